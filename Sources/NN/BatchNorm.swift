import Tensor

/// Batch normalization, PyTorch's `nn.BatchNorm1d` / `nn.BatchNorm2d`.
///
/// input (N, C) or (N, C, H, W); statistics per channel c over M = N·H·W values.
/// Training normalizes with the batch mean and biased variance and updates
/// running_mean/var with momentum 0.1 (the variance unbiased, ·M/(M−1));
/// evaluation normalizes with the running statistics. eps = 1e-5.
public class BatchNorm: Layer {
    public var path = "bn"
    public var needsInputGradient = true
    public let features: Int
    public let eps: Float
    public let momentum: Float
    /// Affine scale (C), init 1, and shift (C), init 0.
    public let weight: Tensor, dWeight: Tensor
    public let bias: Tensor, dBias: Tensor
    /// Running statistics (C), init 0 and 1.
    public let runningMean: Tensor
    public let runningVar: Tensor
    /// Rank of the input this layer accepts (2 or 4).
    let inputRank: Int

    /// x̂ of the last forward pass, shaped like the input.
    private var normalized = Workspace()
    /// 1/sqrt(σ² + eps) per channel used by the last forward pass.
    private var invStd: [Float]
    /// Mean per channel used by the last forward pass.
    private var means: [Float]
    /// Whether the last forward pass used batch statistics.
    private var usedBatchStatistics = false
    private var output = Workspace()
    private var dInput = Workspace()

    init(features: Int, inputRank: Int, eps: Float, momentum: Float) {
        precondition(features > 0)
        self.features = features; self.inputRank = inputRank; self.eps = eps; self.momentum = momentum
        weight = Tensor(shape: [features], repeating: 1); dWeight = Tensor(zeros: [features])
        bias = Tensor(zeros: [features]); dBias = Tensor(zeros: [features])
        runningMean = Tensor(zeros: [features]); runningVar = Tensor(shape: [features], repeating: 1)
        invStd = Array(repeating: 0, count: features)
        means = Array(repeating: 0, count: features)
    }

    var layerKind: String { inputRank == 4 ? "BatchNorm2d" : "BatchNorm1d" }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        try check(input, inputRank == 4 ? [nil, features, nil, nil] : [nil, features], "input")
        let n = input.shape[0], c = features, hw = inputRank == 4 ? input.shape[2] * input.shape[3] : 1
        let m = n * hw
        if training && m < 2 { throw NNError.batchTooSmall(layer: path, valuesPerChannel: m) }
        let xhat = normalized.get(input.shape)
        let out = output.get(input.shape)
        usedBatchStatistics = training
        if training {
            // Sums in Float64, channel by channel; for (N, C) rows are summed in place so the
            // loop runs along memory (the same additions in the same order either way).
            var sums = [Double](repeating: 0, count: c), squares = [Double](repeating: 0, count: c)
            if hw == 1 {
                for img in 0..<n { let x = input.data + img * c; for ch in 0..<c { sums[ch] += Double(x[ch]) } }
                let means = sums.map { Float($0 / Double(m)) }
                for img in 0..<n {
                    let x = input.data + img * c
                    for ch in 0..<c { let d = Double(x[ch]) - Double(means[ch]); squares[ch] += d * d }
                }
            } else {
                for ch in 0..<c {
                    for img in 0..<n { sums[ch] += Reductions.sum(input.data + (img * c + ch) * hw, count: hw) }
                    let mean = Float(sums[ch] / Double(m))
                    for img in 0..<n {
                        squares[ch] += Reductions.sumOfSquaredDeviations(input.data + (img * c + ch) * hw, count: hw, mean: mean)
                    }
                }
            }
            let mo = Double(momentum)
            for ch in 0..<c {
                let mu = sums[ch] / Double(m), variance = squares[ch] / Double(m)
                runningMean[ch] = Float((1 - mo) * Double(runningMean[ch]) + mo * mu)
                runningVar[ch] = Float((1 - mo) * Double(runningVar[ch]) + mo * variance * Double(m) / Double(m - 1))
                means[ch] = Float(mu)
                invStd[ch] = Float(1 / (variance + Double(eps)).squareRoot())
            }
        } else {
            for ch in 0..<c {
                means[ch] = runningMean[ch]
                invStd[ch] = Float(1 / (Double(runningVar[ch]) + Double(eps)).squareRoot())
            }
        }
        means.withUnsafeBufferPointer { mu in
            invStd.withUnsafeBufferPointer { inv in
                let w = weight.data, b = bias.data
                if hw == 1 {
                    for img in 0..<n {
                        let off = img * c
                        let x = input.data + off, xh = xhat.data + off, y = out.data + off
                        for ch in 0..<c { let v = (x[ch] - mu[ch]) * inv[ch]; xh[ch] = v; y[ch] = v * w[ch] + b[ch] }
                    }
                    return
                }
                for ch in 0..<c {
                    let muF = mu[ch], invF = inv[ch], wF = w[ch], bF = b[ch]
                    for img in 0..<n {
                        let off = (img * c + ch) * hw
                        let x = input.data + off, xh = xhat.data + off, y = out.data + off
                        for i in 0..<hw { let v = (x[i] - muF) * invF; xh[i] = v; y[i] = v * wF + bF }
                    }
                }
            }
        }
        return out
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let xhat = normalized.get(dOutput.shape)
        let dIn = dInput.get(dOutput.shape)
        let n = dOutput.shape[0], c = features, hw = inputRank == 4 ? dOutput.shape[2] * dOutput.shape[3] : 1
        let m = Float(n * hw)
        if hw == 1 {
            // (N, C): the same sums as below, accumulated row by row along memory.
            var sumDy = [Float](repeating: 0, count: c), sumDyX = [Float](repeating: 0, count: c)
            for img in 0..<n {
                let dy = dOutput.data + img * c, xh = xhat.data + img * c
                for ch in 0..<c { sumDy[ch] += dy[ch]; sumDyX[ch] += dy[ch] * xh[ch] }
            }
            for ch in 0..<c { dWeight[ch] += sumDyX[ch]; dBias[ch] += sumDy[ch] }
            guard needsInputGradient else { return dIn }
            let scale = (0..<c).map { weight[$0] * invStd[$0] }
            let meanDy = sumDy.map { $0 / m }, meanDyX = sumDyX.map { $0 / m }
            let batch = usedBatchStatistics
            for img in 0..<n {
                let dy = dOutput.data + img * c, xh = xhat.data + img * c, dx = dIn.data + img * c
                if batch {
                    for ch in 0..<c { dx[ch] = scale[ch] * (dy[ch] - meanDy[ch] - xh[ch] * meanDyX[ch]) }
                } else {
                    for ch in 0..<c { dx[ch] = scale[ch] * dy[ch] }
                }
            }
            return dIn
        }
        for ch in 0..<c {
            var sumDy: Float = 0, sumDyX: Float = 0
            for img in 0..<n {
                let off = (img * c + ch) * hw
                let dy = dOutput.data + off, xh = xhat.data + off
                for i in 0..<hw { sumDy += dy[i]; sumDyX += dy[i] * xh[i] }
            }
            dWeight[ch] += sumDyX
            dBias[ch] += sumDy
            guard needsInputGradient else { continue }
            let scale = weight[ch] * invStd[ch]
            for img in 0..<n {
                let off = (img * c + ch) * hw
                let dy = dOutput.data + off, xh = xhat.data + off, dx = dIn.data + off
                if usedBatchStatistics {
                    // ∂x = w/σ · (∂y − mean(∂y) − x̂·mean(∂y·x̂))
                    let meanDy = sumDy / m, meanDyX = sumDyX / m
                    for i in 0..<hw { dx[i] = scale * (dy[i] - meanDy - xh[i] * meanDyX) }
                } else {
                    for i in 0..<hw { dx[i] = scale * dy[i] }
                }
            }
        }
        return dIn
    }

    public var state: [StateEntry] {
        let k = layerKind
        return [
            StateEntry(name: "weight", value: weight, gradient: dWeight, kind: .parameter, isNormalization: true, layerKind: k),
            StateEntry(name: "bias", value: bias, gradient: dBias, kind: .parameter, isNormalization: true, layerKind: k),
            StateEntry(name: "running_mean", value: runningMean, gradient: nil, kind: .buffer, isNormalization: true, layerKind: k),
            StateEntry(name: "running_var", value: runningVar, gradient: nil, kind: .buffer, isNormalization: true, layerKind: k),
        ]
    }
}

/// `nn.BatchNorm2d`: input (N, C, H, W).
public final class BatchNorm2d: BatchNorm {
    public init(features: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        super.init(features: features, inputRank: 4, eps: eps, momentum: momentum)
    }
}

/// `nn.BatchNorm1d`: input (N, C).
public final class BatchNorm1d: BatchNorm {
    public init(features: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        super.init(features: features, inputRank: 2, eps: eps, momentum: momentum)
    }
}
