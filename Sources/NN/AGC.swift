import CBLAS
import Tensor

/// Adaptive gradient clipping (NF-Nets, Brock et al. 2021), the local-training
/// ingredient of FedWon (Zhuang & Lyu, ICLR 2024).
///
/// For each unit i of a parameter — an output channel of a conv weight (dims 1..3 of
/// OIHW), an output row of a linear weight, the whole tensor for a vector:
///
///     ratio = ‖G_i‖ / max(‖W_i‖, 1e-3)
///     if ratio > λ:  G_i ← G_i · λ · max(‖W_i‖, 1e-3) / max(‖G_i‖, 1e-6)
///
/// Applied after backward and before the optimizer step. The final classifier is
/// not clipped (`excluded` names its layer prefix).
public struct AdaptiveGradientClipping: Sendable {
    /// λ, the largest allowed ratio of gradient norm to weight norm per unit.
    public var clipping: Float
    /// Floor on the weight norm.
    public var eps: Float = 1e-3
    /// Name prefixes of layers that are not clipped (the final classifier, e.g. "fc3").
    public var excluded: [String]

    public init(clipping: Float, excluded: [String] = []) {
        precondition(clipping > 0, "AGC clipping λ must be positive, got \(clipping)")
        self.clipping = clipping; self.excluded = excluded
    }

    /// Whether the parameter called `name` is clipped.
    public func applies(to name: String) -> Bool {
        !excluded.contains { name == $0 || name.hasPrefix($0 + ".") }
    }

    /// Clips the gradients of every parameter in `entries` that `applies(to:)`.
    /// - Returns: how many units were clipped.
    @discardableResult
    public func clip(_ entries: [StateEntry]) -> Int {
        var clipped = 0
        for e in entries where e.kind == .parameter && applies(to: e.name) {
            if let g = e.gradient { clipped += clip(weight: e.value, gradient: g) }
        }
        return clipped
    }

    /// Clips one parameter's gradient in place, unit-wise. Returns how many units were clipped.
    @discardableResult
    public func clip(weight: Tensor, gradient: Tensor) -> Int {
        precondition(weight.count == gradient.count)
        let units = weight.rank <= 1 ? 1 : weight.shape[0]
        let size = weight.count / max(units, 1)
        var clipped = 0
        for u in 0..<units {
            let w = weight.data + u * size, g = gradient.data + u * size
            let ww = Double(cblas_sdot(Int32(size), w, 1, w, 1)), gg = Double(cblas_sdot(Int32(size), g, 1, g, 1))
            let wNorm = max(ww.squareRoot(), Double(eps))
            let gNorm = gg.squareRoot()
            if gNorm / wNorm > Double(clipping) {
                let scale = Float(Double(clipping) * wNorm / max(gNorm, 1e-6))
                for j in 0..<size { g[j] *= scale }
                clipped += 1
            }
        }
        return clipped
    }
}
