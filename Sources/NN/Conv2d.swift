import Tensor

/// The im2col + GEMM convolution shared by `Conv2d` and `WSConv2d`.
///
/// input (N, C, H, W), weight (O, C, KH, KW) viewed as (O, C·KH·KW), output (N, O, OH, OW).
/// Forward unfolds the whole batch into one column matrix (C·KH·KW, N·L) and runs
/// one GEMM; backward runs two (∂W and ∂col) and folds ∂col back into ∂input.
struct ConvCore {
    let inChannels: Int
    let outChannels: Int
    let kernelSize: Int
    let stride: Int
    let padding: Int

    /// Geometry and batch size of the last forward pass.
    private(set) var geometry: ConvGeometry?
    private(set) var batch = 0
    /// Column matrix (C·KH·KW, N·L) of the last forward input; backward reuses
    /// its memory for ∂col once ∂W has been computed.
    private var col = Workspace()
    /// GEMM result (O, N·L) before it is permuted to (N, O, L); in backward, ∂output permuted the same way.
    private var columnsOut = Workspace()
    private var output = Workspace()
    private var dInput = Workspace()

    init(inChannels: Int, outChannels: Int, kernelSize: Int, stride: Int, padding: Int) {
        precondition(inChannels > 0 && outChannels > 0 && kernelSize > 0 && stride > 0 && padding >= 0)
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelSize = kernelSize; self.stride = stride; self.padding = padding
    }

    /// output (N, O, OH, OW) = weight ⋆ input (N, C, H, W) + bias.
    mutating func forward(_ input: Tensor, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, path: String) throws -> Tensor {
        guard input.rank == 4, input.shape[1] == inChannels else {
            throw NNError.shape(layer: path, expected: ["N", String(inChannels), "H", "W"], actual: input.shape, what: "input")
        }
        let n = input.shape[0]
        let g = ConvGeometry(channels: inChannels, height: input.shape[2], width: input.shape[3],
                             kernelH: kernelSize, kernelW: kernelSize, stride: stride, padding: padding)
        guard g.height + 2 * padding >= kernelSize, g.width + 2 * padding >= kernelSize else {
            throw NNError.shape(layer: path, expected: ["N", String(inChannels), "≥\(kernelSize - 2 * padding)", "≥\(kernelSize - 2 * padding)"],
                                actual: input.shape, what: "input (image smaller than the kernel)")
        }
        geometry = g; batch = n
        let l = g.positions, cols = n * l, k = g.patchSize
        let colT = col.get([k, cols])
        Im2col.unfold(g, batch: n, input: input.data, col: colT.data)
        let out2 = columnsOut.get([outChannels, cols])
        BLAS.gemm(transA: false, transB: false, m: outChannels, n: cols, k: k,
                  alpha: 1, a: weight, lda: k, b: colT.data, ldb: cols, beta: 0, c: out2.data, ldc: cols)
        let out = output.get([n, outChannels, g.outHeight, g.outWidth])
        for img in 0..<n {
            for o in 0..<outChannels {
                let dst = out.data + (img * outChannels + o) * l
                let src = out2.data + o * cols + img * l
                let b = bias?[o] ?? 0
                for p in 0..<l { dst[p] = src[p] + b }
            }
        }
        return out
    }

    /// Accumulates ∂L/∂weight into `dWeight` (and ∂L/∂bias into `dBias`) and returns ∂L/∂input.
    mutating func backward(_ dOutput: Tensor, weight: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                           dBias: UnsafeMutablePointer<Float>?, needsInputGradient: Bool) -> Tensor {
        guard let g = geometry else { preconditionFailure("ConvCore.backward before forward") }
        let n = batch, l = g.positions, cols = n * l, k = g.patchSize
        precondition(dOutput.count == n * outChannels * l, "conv backward: ∂output \(dOutput.shape)")
        // ∂output (N, O, L) → (O, N·L), summing ∂bias on the way.
        let d2 = columnsOut.get([outChannels, cols])
        for o in 0..<outChannels {
            var s: Float = 0
            for img in 0..<n {
                let src = dOutput.data + (img * outChannels + o) * l
                let dst = d2.data + o * cols + img * l
                dst.update(from: src, count: l)
                for p in 0..<l { s += src[p] }
            }
            if let dBias { dBias[o] += s }
        }
        let colT = col.get([k, cols])
        // ∂W (O, C·KH·KW) += ∂out2 (O, N·L) · colᵀ (N·L, C·KH·KW)
        BLAS.gemm(transA: false, transB: true, m: outChannels, n: k, k: cols,
                  alpha: 1, a: d2.data, lda: cols, b: colT.data, ldb: cols, beta: 1, c: dWeight, ldc: k)
        let dIn = dInput.get([n, inChannels, g.height, g.width])
        guard needsInputGradient else { return dIn }
        // ∂col (C·KH·KW, N·L) = Wᵀ · ∂out2, written over the forward columns (no longer needed).
        BLAS.gemm(transA: true, transB: false, m: k, n: cols, k: outChannels,
                  alpha: 1, a: weight, lda: k, b: d2.data, ldb: cols, beta: 0, c: colT.data, ldc: cols)
        dIn.zero()
        Im2col.fold(g, batch: n, col: colT.data, output: dIn.data)
        return dIn
    }
}

/// 2-D convolution, PyTorch's `nn.Conv2d` with square kernel, stride and zero padding.
///
/// input (N, C, H, W) → output (N, O, OH, OW), OH = (H + 2·padding − kernel)/stride + 1.
/// Weights are initialized like PyTorch: uniform(±1/√fan_in), bias likewise.
public final class Conv2d: Layer {
    public var path = "conv"
    public var needsInputGradient = true
    /// (O, C, KH, KW)
    public let weight: Tensor
    public let dWeight: Tensor
    /// (O), or nil without bias.
    public let bias: Tensor?
    public let dBias: Tensor?
    private var core: ConvCore

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, seed: UInt64 = 0) {
        core = ConvCore(inChannels: inputChannels, outChannels: outputChannels, kernelSize: kernelSize, stride: stride, padding: padding)
        weight = Tensor(zeros: [outputChannels, inputChannels, kernelSize, kernelSize])
        dWeight = Tensor(zeros: weight.shape)
        self.bias = bias ? Tensor(zeros: [outputChannels]) : nil
        self.dBias = bias ? Tensor(zeros: [outputChannels]) : nil
        var rng = SeededGenerator(seed: seed)
        let bound = 1 / Float(inputChannels * kernelSize * kernelSize).squareRoot()
        weight.fillUniform(-bound, bound, using: &rng)
        self.bias?.fillUniform(-bound, bound, using: &rng)
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        try core.forward(input, weight: weight.data, bias: bias?.data, path: path)
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        core.backward(dOutput, weight: weight.data, dWeight: dWeight.data, dBias: dBias?.data, needsInputGradient: needsInputGradient)
    }

    public var state: [StateEntry] {
        var s = [StateEntry(name: "weight", value: weight, gradient: dWeight, kind: .parameter, isNormalization: false, layerKind: "Conv2d")]
        if let bias { s.append(StateEntry(name: "bias", value: bias, gradient: dBias, kind: .parameter, isNormalization: false, layerKind: "Conv2d")) }
        return s
    }
}
