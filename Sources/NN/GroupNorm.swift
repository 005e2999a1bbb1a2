import Tensor

/// Normalizes each contiguous row of `count` values to zero mean and unit
/// (biased) variance, the kernel GroupNorm and LayerNorm share.
///
/// x (R, D) → x̂ (R, D), keeping 1/sqrt(var + eps) per row for backward.
struct RowNormalizer {
    /// 1/sqrt(var + eps) per row, from the last `forward`.
    private(set) var invStd: [Float] = []

    mutating func forward(_ x: UnsafePointer<Float>, rows: Int, length d: Int, eps: Float, xhat: UnsafeMutablePointer<Float>) {
        if invStd.count != rows { invStd = Array(repeating: 0, count: rows) }
        for r in 0..<rows {
            let p = x + r * d, q = xhat + r * d
            let mu = Reductions.sum(p, count: d) / Double(d)
            let ss = Reductions.sumOfSquaredDeviations(p, count: d, mean: Float(mu))
            let inv = Float(1 / (ss / Double(d) + Double(eps)).squareRoot())
            invStd[r] = inv
            let muF = Float(mu)
            for i in 0..<d { q[i] = (p[i] - muF) * inv }
        }
    }

    /// ∂x = (1/σ)(∂x̂ − mean(∂x̂) − x̂·mean(∂x̂·x̂)) per row; `dxhat` is overwritten with ∂x.
    func backward(dxhat: UnsafeMutablePointer<Float>, xhat: UnsafePointer<Float>, rows: Int, length d: Int) {
        for r in 0..<rows {
            let g = dxhat + r * d, xh = xhat + r * d
            var sg = 0.0, sgx = 0.0
            for i in 0..<d { sg += Double(g[i]); sgx += Double(g[i]) * Double(xh[i]) }
            let mg = Float(sg / Double(d)), mgx = Float(sgx / Double(d)), inv = invStd[r]
            for i in 0..<d { g[i] = inv * (g[i] - mg - xh[i] * mgx) }
        }
    }
}

/// Group normalization, PyTorch's `nn.GroupNorm`.
///
/// input (N, C) or (N, C, H, W); statistics per sample and group of C/G channels
/// (biased variance, eps 1e-5), then a per-channel affine (weight 1, bias 0 at init).
public final class GroupNorm: Layer {
    public var path = "gn"
    public var needsInputGradient = true
    public let groups: Int
    public let channels: Int
    public let eps: Float
    /// (C)
    public let weight: Tensor, dWeight: Tensor
    public let bias: Tensor, dBias: Tensor

    private var rows = RowNormalizer()
    /// x̂ of the last forward pass, shaped like the input.
    private var normalized = Workspace()
    private var output = Workspace()
    private var dInput = Workspace()

    public init(groups: Int, channels: Int, eps: Float = 1e-5) {
        precondition(groups > 0 && channels % groups == 0, "GroupNorm: \(channels) channels do not split into \(groups) groups")
        self.groups = groups; self.channels = channels; self.eps = eps
        weight = Tensor(shape: [channels], repeating: 1); dWeight = Tensor(zeros: [channels])
        bias = Tensor(zeros: [channels]); dBias = Tensor(zeros: [channels])
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard (input.rank == 2 || input.rank == 4), input.shape[1] == channels else {
            throw NNError.shape(layer: path, expected: input.rank == 2 ? ["N", String(channels)] : ["N", String(channels), "H", "W"],
                                actual: input.shape, what: "input")
        }
        let n = input.shape[0], hw = input.count / max(n * channels, 1)
        let d = channels / groups * hw
        let xhat = normalized.get(input.shape), out = output.get(input.shape)
        rows.forward(input.data, rows: n * groups, length: d, eps: eps, xhat: xhat.data)
        for img in 0..<n {
            for c in 0..<channels {
                let off = (img * channels + c) * hw, w = weight[c], b = bias[c]
                let xh = xhat.data + off, y = out.data + off
                for i in 0..<hw { y[i] = xh[i] * w + b }
            }
        }
        return out
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let n = dOutput.shape[0], hw = dOutput.count / max(n * channels, 1)
        let xhat = normalized.get(dOutput.shape), dIn = dInput.get(dOutput.shape)
        for img in 0..<n {
            for c in 0..<channels {
                let off = (img * channels + c) * hw, w = weight[c]
                let dy = dOutput.data + off, xh = xhat.data + off, g = dIn.data + off
                var sw: Float = 0, sb: Float = 0
                for i in 0..<hw { sw += dy[i] * xh[i]; sb += dy[i]; g[i] = dy[i] * w }
                dWeight[c] += sw; dBias[c] += sb
            }
        }
        if needsInputGradient {
            rows.backward(dxhat: dIn.data, xhat: xhat.data, rows: n * groups, length: channels / groups * hw)
        }
        return dIn
    }

    public var state: [StateEntry] {
        [
            StateEntry(name: "weight", value: weight, gradient: dWeight, kind: .parameter, isNormalization: true, layerKind: "GroupNorm"),
            StateEntry(name: "bias", value: bias, gradient: dBias, kind: .parameter, isNormalization: true, layerKind: "GroupNorm"),
        ]
    }
}

/// Layer normalization, PyTorch's `nn.LayerNorm(normalized_shape)`.
///
/// input (N, *normalizedShape): statistics per sample over all of normalizedShape
/// (biased variance, eps 1e-5), then an elementwise affine of that shape.
public final class LayerNorm: Layer {
    public var path = "ln"
    public var needsInputGradient = true
    public let normalizedShape: [Int]
    public let eps: Float
    /// (normalizedShape)
    public let weight: Tensor, dWeight: Tensor
    public let bias: Tensor, dBias: Tensor

    private var rows = RowNormalizer()
    private var normalized = Workspace()
    private var output = Workspace()
    private var dInput = Workspace()

    public init(normalizedShape: [Int], eps: Float = 1e-5) {
        self.normalizedShape = normalizedShape; self.eps = eps
        weight = Tensor(shape: normalizedShape, repeating: 1); dWeight = Tensor(zeros: normalizedShape)
        bias = Tensor(zeros: normalizedShape); dBias = Tensor(zeros: normalizedShape)
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        try check(input, [nil] + normalizedShape.map { $0 }, "input")
        let n = input.shape[0], d = weight.count
        let xhat = normalized.get(input.shape), out = output.get(input.shape)
        rows.forward(input.data, rows: n, length: d, eps: eps, xhat: xhat.data)
        for img in 0..<n {
            let xh = xhat.data + img * d, y = out.data + img * d
            for i in 0..<d { y[i] = xh[i] * weight.data[i] + bias.data[i] }
        }
        return out
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let n = dOutput.shape[0], d = weight.count
        let xhat = normalized.get(dOutput.shape), dIn = dInput.get(dOutput.shape)
        for img in 0..<n {
            let dy = dOutput.data + img * d, xh = xhat.data + img * d, g = dIn.data + img * d
            for i in 0..<d {
                dWeight.data[i] += dy[i] * xh[i]
                dBias.data[i] += dy[i]
                g[i] = dy[i] * weight.data[i]
            }
        }
        if needsInputGradient { rows.backward(dxhat: dIn.data, xhat: xhat.data, rows: n, length: d) }
        return dIn
    }

    public var state: [StateEntry] {
        [
            StateEntry(name: "weight", value: weight, gradient: dWeight, kind: .parameter, isNormalization: true, layerKind: "LayerNorm"),
            StateEntry(name: "bias", value: bias, gradient: dBias, kind: .parameter, isNormalization: true, layerKind: "LayerNorm"),
        ]
    }
}
