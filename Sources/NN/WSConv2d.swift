import Tensor

/// Convolution with scaled weight standardization (NF-Nets, Brock et al. 2021),
/// the reparameterization FedWon (Zhuang & Lyu, ICLR 2024, Eq. 1) applies to every
/// convolution of a normalization-free model.
///
/// Per output channel i, with v = weight[i] flattened over its fan-in N = C·KH·KW:
///
///     μ = mean(v), s² = mean((v − μ)²) (biased), d = sqrt(max(N·s², ε))
///     Ŵ[i] = γ · gain[i] · (v − μ) / d
///
/// and the layer convolves with Ŵ. `gain` is learned (init 1); γ is a constant:
/// sqrt(2 / (1 − 1/π)) for a convolution followed by ReLU, 1 otherwise; ε = 1e-4.
public final class WSConv2d: Layer {
    /// γ for a WSConv followed by ReLU: sqrt(2 / (1 − 1/π)) ≈ 1.7128585.
    public static let reluGamma: Float = Float((2.0 / (1.0 - 1.0 / Double.pi)).squareRoot())

    public var path = "conv"
    public var needsInputGradient = true
    /// The raw weight v (O, C, KH, KW), what the optimizer updates.
    public let weight: Tensor
    public let dWeight: Tensor
    /// Learnable per-channel gain (O), init 1.
    public let gain: Tensor
    public let dGain: Tensor
    /// (O), init 0, or nil.
    public let bias: Tensor?
    public let dBias: Tensor?
    /// γ, a constant of the layer.
    public let gamma: Float
    /// ε on N·s².
    public let eps: Float

    private var core: ConvCore
    /// Ŵ (O, C·KH·KW) of the last forward pass.
    private var standardized = Workspace()
    /// ∂L/∂Ŵ, filled by backward.
    private var dStandardized = Workspace()
    /// Per channel from the last forward: μ, s (biased std) and d = sqrt(max(N·s², ε)).
    private var mean: [Double]
    private var std: [Double]
    private var denominator: [Double]

    public init(inputChannels: Int, outputChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                bias: Bool = true, gamma: Float = WSConv2d.reluGamma, eps: Float = 1e-4, seed: UInt64 = 0) {
        core = ConvCore(inChannels: inputChannels, outChannels: outputChannels, kernelSize: kernelSize, stride: stride, padding: padding)
        weight = Tensor(zeros: [outputChannels, inputChannels, kernelSize, kernelSize])
        dWeight = Tensor(zeros: weight.shape)
        gain = Tensor(shape: [outputChannels], repeating: 1)
        dGain = Tensor(zeros: [outputChannels])
        self.bias = bias ? Tensor(zeros: [outputChannels]) : nil
        self.dBias = bias ? Tensor(zeros: [outputChannels]) : nil
        self.gamma = gamma
        self.eps = eps
        mean = Array(repeating: 0, count: outputChannels)
        std = mean
        denominator = mean
        var rng = SeededGenerator(seed: seed)
        let bound = 1 / Float(inputChannels * kernelSize * kernelSize).squareRoot()
        weight.fillUniform(-bound, bound, using: &rng)
    }

    private var fanIn: Int { weight.count / weight.shape[0] }

    /// Computes Ŵ from weight and gain into `standardized`, keeping μ, s, d per channel.
    private func standardize() -> Tensor {
        let o = weight.shape[0], n = fanIn
        let w = standardized.get([o, n])
        for i in 0..<o {
            let v = weight.data + i * n
            var s = 0.0
            for j in 0..<n { s += Double(v[j]) }
            let mu = s / Double(n)
            var ss = 0.0
            for j in 0..<n { let c = Double(v[j]) - mu; ss += c * c }
            let variance = ss / Double(n)
            let d = max(Double(n) * variance, Double(eps)).squareRoot()
            mean[i] = mu; std[i] = variance.squareRoot(); denominator[i] = d
            let scale = Double(gamma) * Double(gain[i]) / d
            let dst = w.data + i * n
            for j in 0..<n { dst[j] = Float((Double(v[j]) - mu) * scale) }
        }
        return w
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let w = standardize()
        return try core.forward(input, weight: w.data, bias: bias?.data, path: path)
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let o = weight.shape[0], n = fanIn
        let w = standardized.get([o, n])
        let g = dStandardized.get([o, n])
        g.zero()
        let dInput = core.backward(dOutput, weight: w.data, dWeight: g.data, dBias: dBias?.data, needsInputGradient: needsInputGradient)
        let nd = Double(n), gam = Double(gamma)
        for i in 0..<o {
            let v = weight.data + i * n, gi = g.data + i * n, dv = dWeight.data + i * n
            let mu = mean[i], s = std[i], d = denominator[i], gn = Double(gain[i])
            // ∂L/∂gain = γ · Σ G · (v − μ) / d
            var dg = 0.0
            for j in 0..<n { dg += Double(gi[j]) * (Double(v[j]) - mu) }
            dGain[i] += Float(gam * dg / d)
            if nd * s * s >= Double(eps) {
                // h = G·γ·gain/√N; ∂v = (h − mean(h) − x̂·mean(h·x̂)) / s, x̂ = (v − μ)/s
                let hScale = gam * gn / nd.squareRoot()
                var sumH = 0.0, sumHX = 0.0
                for j in 0..<n {
                    let h = Double(gi[j]) * hScale
                    sumH += h; sumHX += h * (Double(v[j]) - mu) / s
                }
                let meanH = sumH / nd, meanHX = sumHX / nd
                for j in 0..<n {
                    let h = Double(gi[j]) * hScale
                    let xhat = (Double(v[j]) - mu) / s
                    dv[j] += Float((h - meanH - xhat * meanHX) / s)
                }
            } else {
                // Clamped denominator: Ŵ = γ·gain·(v − μ)/√ε, so ∂v = γ·gain/√ε · (G − mean(G)).
                var sumG = 0.0
                for j in 0..<n { sumG += Double(gi[j]) }
                let meanG = sumG / nd, scale = gam * gn / Double(eps).squareRoot()
                for j in 0..<n { dv[j] += Float(scale * (Double(gi[j]) - meanG)) }
            }
        }
        return dInput
    }

    public var state: [StateEntry] {
        var s = [
            StateEntry(name: "weight", value: weight, gradient: dWeight, kind: .parameter, isNormalization: false, layerKind: "WSConv2d"),
        ]
        if let bias { s.append(StateEntry(name: "bias", value: bias, gradient: dBias, kind: .parameter, isNormalization: false, layerKind: "WSConv2d")) }
        s.append(StateEntry(name: "gain", value: gain, gradient: dGain, kind: .parameter, isNormalization: false, layerKind: "WSConv2d"))
        return s
    }
}
