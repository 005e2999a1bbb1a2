import Tensor

/// A network with a fixed input shape, its named state, and its training mode.
public final class Model {
    /// How it was built.
    public let spec: ModelSpec
    /// The layers.
    public let network: Sequential
    /// Every named tensor, in a stable order (the order of `network`'s layers).
    public let entries: [StateEntry]
    /// Name prefix of the final classifier layer (not clipped by AGC).
    public let classifierName: String

    init(spec: ModelSpec, network: Sequential, classifierName: String) {
        self.spec = spec
        self.network = network
        self.classifierName = classifierName
        network.needsInputGradient = false
        entries = network.state
    }

    /// (C, H, W) of one input example.
    public var inputShape: [Int] { [spec.inputChannels, spec.inputSize, spec.inputSize] }

    /// Number of classes the model predicts.
    public var classes: Int { spec.classes }

    /// Number of trainable scalars.
    public var parameterCount: Int { entries.filter { $0.kind == .parameter }.reduce(0) { $0 + $1.value.count } }

    /// The parameters (not the buffers).
    public var parameters: [StateEntry] { entries.filter { $0.kind == .parameter } }

    /// logits (N, K) for `input` (N, C, H, W).
    /// - Throws: `NNError.shape` when the input is not (N, C, H, W) of this model's size;
    ///   layer errors (BatchNorm on a single value) otherwise.
    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.rank == 4, Array(input.shape.dropFirst()) == inputShape, input.shape[0] > 0 else {
            throw NNError.shape(layer: "\(spec.architecture.rawValue) input", expected: ["N"] + inputShape.map(String.init),
                                actual: input.shape, what: "images")
        }
        return try network.forward(input, training: training)
    }

    /// Backpropagates ∂L/∂logits, accumulating every parameter's gradient.
    public func backward(_ dLogits: Tensor) {
        _ = network.backward(dLogits)
    }

    /// Sets every gradient to zero.
    public func zeroGradients() {
        for e in entries { e.gradient?.zero() }
    }
}
