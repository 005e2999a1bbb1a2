import Tensor

// Letters used in shape comments across NN:
//   N batch, C input channels, O output channels, H×W input size, OH×OW output size,
//   KH×KW kernel, F input features, K classes, G groups.

/// Whether a named tensor is trained by the optimizer or only updated by the layer itself.
public enum StateKind: String, Sendable, Equatable {
    /// Learned by gradient descent; has a gradient tensor of the same shape.
    case parameter
    /// Updated by the layer's forward pass (BatchNorm running statistics).
    case buffer
}

/// One named tensor of a layer or model.
///
/// `value` and `gradient` are the live tensors: writing to them changes the model.
public struct StateEntry: @unchecked Sendable {
    /// Dotted PyTorch-style name (`conv1.weight`, `bn1.running_mean`).
    public let name: String
    public let value: Tensor
    /// The accumulated gradient of a parameter; `nil` for a buffer.
    public let gradient: Tensor?
    public let kind: StateKind
    /// True for every tensor of a normalization layer (BatchNorm, GroupNorm, LayerNorm):
    /// FedBN keeps the BatchNorm ones on the client.
    public let isNormalization: Bool
    /// The kind of layer that owns it (`BatchNorm2d`, `Conv2d`, ...).
    public let layerKind: String

    public init(name: String, value: Tensor, gradient: Tensor?, kind: StateKind, isNormalization: Bool, layerKind: String) {
        self.name = name; self.value = value; self.gradient = gradient
        self.kind = kind; self.isNormalization = isNormalization; self.layerKind = layerKind
    }

    /// The same entry under `prefix.name`.
    public func prefixed(_ prefix: String) -> StateEntry {
        StateEntry(name: prefix.isEmpty ? name : "\(prefix).\(name)", value: value, gradient: gradient,
                   kind: kind, isNormalization: isNormalization, layerKind: layerKind)
    }

    /// True for BatchNorm tensors (the ones FedBN keeps local).
    public var isBatchNorm: Bool { layerKind.hasPrefix("BatchNorm") }
}

/// A layer with an explicit forward and backward pass.
///
/// `forward` keeps what `backward` needs as documented stored properties of the
/// layer; `backward` must follow the `forward` it differentiates. Backward
/// *accumulates* parameter gradients (`+=`); `Model.zeroGradients()` clears them.
public protocol Layer: AnyObject {
    /// The layer's path in its model, used in error messages (`conv2`, `layer1.0.conv1`).
    var path: String { get set }
    /// Runs the layer on `input`.
    /// - Throws: `NNError` naming the layer when `input` has the wrong shape or the
    ///   batch cannot be processed (BatchNorm on one value per channel).
    func forward(_ input: Tensor, training: Bool) throws -> Tensor
    /// Given ∂L/∂output, accumulates parameter gradients and returns ∂L/∂input.
    /// When `needsInputGradient` is false the returned tensor is not meaningful.
    func backward(_ dOutput: Tensor) -> Tensor
    /// Whether `backward` must compute ∂L/∂input (false for a model's first layer).
    var needsInputGradient: Bool { get set }
    /// The layer's named tensors, with names relative to the layer (`weight`, `bias`).
    var state: [StateEntry] { get }
}

extension Layer {
    /// Throws `NNError.shape` unless `input` has `rank` dimensions and the given sizes
    /// (`nil` entries are free).
    func check(_ input: Tensor, _ expected: [Int?], _ what: String) throws {
        let ok = input.rank == expected.count && zip(input.shape, expected).allSatisfy { $1 == nil || $0 == $1! }
        if !ok {
            throw NNError.shape(layer: path, expected: expected.map { $0.map(String.init) ?? "*" }, actual: input.shape, what: what)
        }
    }
}

/// Everything that can go wrong in the NN module, with the offending values.
public enum NNError: Error, Equatable, CustomStringConvertible {
    case shape(layer: String, expected: [String], actual: [Int], what: String)
    case missingTensor(name: String, expectedShape: [Int])
    case unexpectedTensor(name: String, shape: [Int])
    case tensorShape(name: String, expected: [Int], actual: [Int])
    case batchTooSmall(layer: String, valuesPerChannel: Int)
    case nonFiniteLoss(Float)
    case labelOutOfRange(index: Int, label: Int, classes: Int)
    case labelCount(expected: Int, actual: Int)
    case invalidConfiguration(String)

    public var description: String {
        switch self {
        case let .shape(layer, expected, actual, what):
            return "layer \(layer) expected \(what) of shape [\(expected.joined(separator: ", "))], got \(actual)"
        case let .missingTensor(name, shape):
            return "state dictionary is missing tensor \(name) (expected shape \(shape))"
        case let .unexpectedTensor(name, shape):
            return "state dictionary has tensor \(name) of shape \(shape), which the model does not have"
        case let .tensorShape(name, expected, actual):
            return "tensor \(name) has shape \(actual); the model expects \(expected)"
        case let .batchTooSmall(layer, n):
            return "layer \(layer) (BatchNorm) cannot train on \(n) value per channel: batch statistics need at least 2 (use a larger batch, or a model without BatchNorm such as --norm none)"
        case let .nonFiniteLoss(v):
            return "loss is \(v): training diverged (lower the learning rate, or enable gradient clipping)"
        case let .labelOutOfRange(index, label, classes):
            return "label \(label) at index \(index) is outside 0..<\(classes)"
        case let .labelCount(expected, actual):
            return "expected \(expected) labels (one per example), got \(actual)"
        case let .invalidConfiguration(message):
            return message
        }
    }
}
