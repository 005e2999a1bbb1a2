import Tensor

/// Stochastic gradient descent in PyTorch's form (dampening 0, no Nesterov):
///
///     g ← g + weightDecay · w
///     v ← momentum · v + g          (v starts at g)
///     w ← w − learningRate · v
public final class SGD {
    /// Step size.
    public var learningRate: Float
    /// Momentum coefficient μ; 0 disables the velocity buffers.
    public var momentum: Float
    /// L2 penalty coefficient added to the gradient.
    public var weightDecay: Float
    /// Velocity per parameter name, created on the first step.
    public private(set) var velocity: [String: Tensor] = [:]

    public init(learningRate: Float, momentum: Float = 0, weightDecay: Float = 0) {
        self.learningRate = learningRate; self.momentum = momentum; self.weightDecay = weightDecay
    }

    /// Applies one step to every parameter in `entries` (buffers are skipped).
    public func step(_ entries: [StateEntry]) {
        for e in entries where e.kind == .parameter {
            guard let g = e.gradient else { continue }
            step(name: e.name, weight: e.value, gradient: g)
        }
    }

    /// One step for a single parameter. `gradient` is modified (weight decay is added to it).
    public func step(name: String, weight w: Tensor, gradient g: Tensor) {
        precondition(w.count == g.count)
        if weightDecay != 0 { g.add(w, scaledBy: weightDecay) }
        if momentum != 0 {
            if let v = velocity[name] {
                v.scale(by: momentum)
                v.add(g)
            } else {
                velocity[name] = g.copy()
            }
            w.add(velocity[name]!, scaledBy: -learningRate)
        } else {
            w.add(g, scaledBy: -learningRate)
        }
    }

    /// Forgets the velocity buffers (FedBN's reference re-creates its optimizer each round).
    public func reset() { velocity.removeAll() }
}
