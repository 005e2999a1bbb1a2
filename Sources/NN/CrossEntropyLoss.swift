import Tensor

/// Cross-entropy over logits with mean reduction, PyTorch's `nn.CrossEntropyLoss()`:
/// loss = mean over the batch of −log softmax(logits)[label].
public struct CrossEntropyLoss {
    /// softmax(logits) (N, K) of the last forward pass.
    private var probabilities = Workspace()
    private var gradient = Workspace()
    /// Labels of the last forward pass.
    private var labels: [Int] = []

    public init() {}

    /// The mean loss of `logits` (N, K) against `labels` (N values in 0..<K).
    /// - Throws: `NNError.labelCount`, `.labelOutOfRange`, `.nonFiniteLoss` (NaN or ∞ logits).
    public mutating func forward(logits: Tensor, labels: [Int]) throws -> Float {
        guard logits.rank == 2 else {
            throw NNError.shape(layer: "cross_entropy", expected: ["N", "K"], actual: logits.shape, what: "logits")
        }
        let n = logits.shape[0], k = logits.shape[1]
        guard labels.count == n else { throw NNError.labelCount(expected: n, actual: labels.count) }
        for (i, y) in labels.enumerated() where y < 0 || y >= k {
            throw NNError.labelOutOfRange(index: i, label: y, classes: k)
        }
        self.labels = labels
        let p = probabilities.get([n, k])
        var total = 0.0
        for i in 0..<n {
            let z = logits.data + i * k, q = p.data + i * k
            var m = z[0]
            for j in 1..<k { m = max(m, z[j]) }
            var s = 0.0
            for j in 0..<k { let e = _exp(Double(z[j] - m)); q[j] = Float(e); s += e }
            for j in 0..<k { q[j] = Float(Double(q[j]) / s) }
            total += -(Double(z[labels[i]] - m) - _log(s))
        }
        let loss = Float(total / Double(n))
        guard loss.isFinite else { throw NNError.nonFiniteLoss(loss) }
        return loss
    }

    /// ∂loss/∂logits = (softmax − onehot(label)) / N for the last forward pass.
    public mutating func backward() -> Tensor {
        let p = probabilities.get(probabilities.tensor?.shape ?? [0, 0])
        let n = p.shape[0], k = p.shape[1]
        let g = gradient.get(p.shape)
        let inv = 1 / Float(n)
        for i in 0..<n {
            for j in 0..<k { g.data[i * k + j] = p.data[i * k + j] * inv }
            g.data[i * k + labels[i]] -= inv
        }
        return g
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func _exp(_ x: Double) -> Double { Glibc.exp(x) }
@inline(__always) func _log(_ x: Double) -> Double { Glibc.log(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) func _exp(_ x: Double) -> Double { Darwin.exp(x) }
@inline(__always) func _log(_ x: Double) -> Double { Darwin.log(x) }
#endif
