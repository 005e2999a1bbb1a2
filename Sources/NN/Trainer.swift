import Tensor

/// One local-training loop's worth of state: a model, its optimizer, and the
/// optional FedWon (AGC) and FedProx (proximal term) ingredients.
public final class Trainer {
    public let model: Model
    public let optimizer: SGD
    /// Adaptive gradient clipping, applied after backward (FedWon); nil to disable.
    public var clipping: AdaptiveGradientClipping?
    /// FedProx μ: adds μ·(w − anchor) to each gradient whose name is in `proximalAnchor`.
    public var proximalMu: Float = 0
    /// The global weights of the round (FedProx); nil to disable.
    public var proximalAnchor: StateDictionary?
    /// Units clipped by AGC since the trainer was created.
    public private(set) var clippedUnits = 0
    private var loss = CrossEntropyLoss()

    public init(model: Model, optimizer: SGD, clipping: AdaptiveGradientClipping? = nil) {
        self.model = model; self.optimizer = optimizer; self.clipping = clipping
    }

    /// Result of one training or evaluation batch.
    public struct BatchResult: Sendable {
        /// Mean loss over the batch.
        public var loss: Float
        /// Number of examples whose arg-max prediction equals the label.
        public var correct: Int
        public var examples: Int
    }

    /// One SGD step on a batch: forward, loss, backward, (AGC), (proximal term), update.
    ///
    /// - Throws: `NNError` for bad shapes or labels, a BatchNorm batch of one, or a
    ///   non-finite loss. When it throws, the weights are unchanged.
    @discardableResult
    public func step(input: Tensor, labels: [Int]) throws -> BatchResult {
        model.zeroGradients()
        let logits = try model.forward(input, training: true)
        let value = try loss.forward(logits: logits, labels: labels)
        let correct = zip(logits.argmaxRows(), labels).filter { $0 == $1 }.count
        model.backward(loss.backward())
        if let clipping { clippedUnits += clipping.clip(model.entries) }
        if proximalMu > 0, let anchor = proximalAnchor {
            for e in model.parameters {
                if let a = anchor[e.name], let g = e.gradient {
                    // ∂/∂w of μ/2·‖w − a‖² = μ(w − a)
                    g.add(e.value, scaledBy: proximalMu)
                    g.add(a, scaledBy: -proximalMu)
                }
            }
        }
        optimizer.step(model.entries)
        return BatchResult(loss: value, correct: correct, examples: labels.count)
    }

    /// Loss and accuracy on a batch in evaluation mode (BatchNorm uses running statistics).
    public func evaluate(input: Tensor, labels: [Int]) throws -> BatchResult {
        let logits = try model.forward(input, training: false)
        let value = try loss.forward(logits: logits, labels: labels)
        let correct = zip(logits.argmaxRows(), labels).filter { $0 == $1 }.count
        return BatchResult(loss: value, correct: correct, examples: labels.count)
    }
}
