import Tensor

/// The normalization a model uses after its convolutions and hidden linear layers.
public enum Norm: String, CaseIterable, Sendable, Codable {
    /// BatchNorm (FedAvg's and FedBN's model).
    case batch
    /// GroupNorm (`groups` groups).
    case group
    /// LayerNorm over (C, H, W) after convolutions and over features after linears.
    case layer
    /// None: every convolution a `WSConv2d` with the ReLU γ (FedWon's model).
    case none
}

/// Model architectures of the zoo.
public enum Architecture: String, CaseIterable, Sendable, Codable {
    /// The FedBN digit CNN (input 3×28×28): 14,219,210 parameters with BatchNorm.
    case digitCNN = "digit-cnn"
    /// The FedBN/FedWon AlexNet variant (any input ≥ 64×64).
    case alexnet
    /// CIFAR-style ResNet-8 (one basic block per stage).
    case resnet8
    /// CIFAR-style ResNet-20 (three basic blocks per stage).
    case resnet20
}

/// Everything needed to build a model, reproducibly.
public struct ModelSpec: Sendable, Equatable, Codable {
    public var architecture: Architecture
    public var norm: Norm
    public var classes: Int
    public var inputChannels: Int
    /// Height and width of the (square) input.
    public var inputSize: Int
    /// Layer widths; `nil` for the architecture's standard widths (see `defaultWidths`).
    public var widths: [Int]?
    /// Groups of every GroupNorm.
    public var groups: Int
    /// Seed of the weight initialization.
    public var seed: UInt64

    public init(architecture: Architecture, norm: Norm, classes: Int = 10, inputChannels: Int = 3, inputSize: Int? = nil,
                widths: [Int]? = nil, groups: Int = 32, seed: UInt64 = 0) {
        self.architecture = architecture; self.norm = norm; self.classes = classes
        self.inputChannels = inputChannels
        self.inputSize = inputSize ?? ModelSpec.defaultInputSize(architecture)
        self.widths = widths; self.groups = groups; self.seed = seed
    }

    /// The FedBN digit model (3×28×28, 10 classes).
    public static func digitCNN(norm: Norm, widths: [Int]? = nil, groups: Int = 32, seed: UInt64 = 0) -> ModelSpec {
        ModelSpec(architecture: .digitCNN, norm: norm, widths: widths, groups: groups, seed: seed)
    }

    public static func defaultInputSize(_ a: Architecture) -> Int {
        switch a {
        case .digitCNN: return 28
        case .alexnet: return 64
        case .resnet8, .resnet20: return 32
        }
    }

    /// Standard widths: digit-cnn [conv1, conv2, conv3, fc1, fc2]; alexnet
    /// [conv1 … conv5, fc1, fc2]; resnet [stage1, stage2, stage3].
    public static func defaultWidths(_ a: Architecture) -> [Int] {
        switch a {
        case .digitCNN: return [64, 64, 128, 2048, 512]
        case .alexnet: return [64, 192, 384, 256, 256, 4096, 4096]
        case .resnet8, .resnet20: return [16, 32, 64]
        }
    }

    /// Builds the model with freshly initialized weights.
    /// - Throws: `NNError.invalidConfiguration` naming the bad value.
    public func build() throws -> Model {
        var builder = ModelBuilder(spec: self)
        return try builder.build()
    }
}

/// Builds zoo models while tracking the activation shape, so LayerNorm and the
/// first linear layer get their sizes from the input size.
struct ModelBuilder {
    let spec: ModelSpec
    let net = Sequential()
    /// Shape of one example after the layers added so far: [C, H, W] or [F].
    var shape: [Int]
    var layerIndex: UInt64 = 0

    init(spec: ModelSpec) {
        self.spec = spec
        shape = [spec.inputChannels, spec.inputSize, spec.inputSize]
    }

    mutating func nextSeed() -> UInt64 {
        layerIndex += 1
        return spec.seed &* 0x9E37_79B9_7F4A_7C15 &+ layerIndex
    }

    func invalid(_ m: String) -> NNError { .invalidConfiguration(m) }

    /// A convolution (WSConv2d when norm is none) followed by its norm (named `normName`).
    mutating func conv(_ name: String, _ out: Int, kernel: Int, stride: Int = 1, padding: Int, normName: String?, into seq: Sequential? = nil, bias: Bool = true) throws {
        let target = seq ?? net
        let c = shape[0], h = shape[1], w = shape[2]
        guard h + 2 * padding >= kernel, w + 2 * padding >= kernel else {
            throw invalid("\(spec.architecture.rawValue): input \(spec.inputSize)×\(spec.inputSize) is too small: layer \(name) sees \(h)×\(w), needs at least \(kernel - 2 * padding)")
        }
        if spec.norm == .none {
            target.append(WSConv2d(inputChannels: c, outputChannels: out, kernelSize: kernel, stride: stride, padding: padding, bias: true, seed: nextSeed()), name: name)
        } else {
            target.append(Conv2d(inputChannels: c, outputChannels: out, kernelSize: kernel, stride: stride, padding: padding, bias: bias, seed: nextSeed()), name: name)
        }
        shape = [out, (h + 2 * padding - kernel) / stride + 1, (w + 2 * padding - kernel) / stride + 1]
        if let normName { try norm(normName, into: target) }
    }

    mutating func linear(_ name: String, _ out: Int, normName: String?) throws {
        let f = shape.reduce(1, *)
        net.append(Linear(inputFeatures: f, outputFeatures: out, seed: nextSeed()), name: name)
        shape = [out]
        if let normName { try norm(normName, into: net) }
    }

    mutating func norm(_ name: String, into seq: Sequential) throws {
        let c = shape[0]
        switch spec.norm {
        case .none: return
        case .batch: seq.append(shape.count == 3 ? BatchNorm2d(features: c) : BatchNorm1d(features: c), name: name)
        case .layer: seq.append(LayerNorm(normalizedShape: shape), name: name)
        case .group:
            guard spec.groups > 0, c % spec.groups == 0 else {
                throw invalid("--groups \(spec.groups) does not divide the \(c) channels of layer \(name)")
            }
            seq.append(GroupNorm(groups: spec.groups, channels: c), name: name)
        }
    }

    mutating func relu(into seq: Sequential? = nil) { (seq ?? net).append(ReLU()) }

    mutating func maxPool(_ k: Int, _ s: Int) throws {
        guard shape[1] >= k, shape[2] >= k else {
            throw invalid("\(spec.architecture.rawValue): input \(spec.inputSize)×\(spec.inputSize) is too small: a \(k)×\(k) pooling sees \(shape[1])×\(shape[2])")
        }
        net.append(MaxPool2d(kernelSize: k, stride: s))
        shape = [shape[0], (shape[1] - k) / s + 1, (shape[2] - k) / s + 1]
    }

    mutating func build() throws -> Model {
        let widths = spec.widths ?? ModelSpec.defaultWidths(spec.architecture)
        let expected = ModelSpec.defaultWidths(spec.architecture).count
        guard widths.count == expected, widths.allSatisfy({ $0 > 0 }) else {
            throw invalid("\(spec.architecture.rawValue) takes \(expected) positive widths, got \(widths)")
        }
        guard spec.classes >= 2 else { throw invalid("classes (\(spec.classes)) must be at least 2") }
        guard spec.inputChannels >= 1 else { throw invalid("input channels (\(spec.inputChannels)) must be at least 1") }
        let classifier: String
        switch spec.architecture {
        case .digitCNN:
            try conv("conv1", widths[0], kernel: 5, padding: 2, normName: "bn1"); relu(); try maxPool(2, 2)
            try conv("conv2", widths[1], kernel: 5, padding: 2, normName: "bn2"); relu(); try maxPool(2, 2)
            try conv("conv3", widths[2], kernel: 5, padding: 2, normName: "bn3"); relu()
            net.append(Flatten())
            try linear("fc1", widths[3], normName: "bn4"); relu()
            try linear("fc2", widths[4], normName: "bn5"); relu()
            try linear("fc3", spec.classes, normName: nil)
            classifier = "fc3"
        case .alexnet:
            guard spec.inputSize >= 64 else { throw invalid("alexnet needs an input of at least 64×64, got \(spec.inputSize)") }
            try conv("conv1", widths[0], kernel: 11, stride: 4, padding: 2, normName: "bn1"); relu(); try maxPool(3, 2)
            try conv("conv2", widths[1], kernel: 5, padding: 2, normName: "bn2"); relu(); try maxPool(3, 2)
            try conv("conv3", widths[2], kernel: 3, padding: 1, normName: "bn3"); relu()
            try conv("conv4", widths[3], kernel: 3, padding: 1, normName: "bn4"); relu()
            try conv("conv5", widths[4], kernel: 3, padding: 1, normName: "bn5"); relu(); try maxPool(3, 2)
            net.append(AdaptiveAvgPool2d(outputSize: 6))
            shape = [shape[0], 6, 6]
            net.append(Flatten())
            try linear("fc1", widths[5], normName: "bn6"); relu()
            try linear("fc2", widths[6], normName: "bn7"); relu()
            try linear("fc3", spec.classes, normName: nil)
            classifier = "fc3"
        case .resnet8, .resnet20:
            let blocks = spec.architecture == .resnet8 ? 1 : 3
            try conv("conv1", widths[0], kernel: 3, padding: 1, normName: "bn1", bias: spec.norm == .none); relu()
            for (stage, width) in widths.enumerated() {
                let layer = Sequential()
                for b in 0..<blocks {
                    let stride = (stage > 0 && b == 0) ? 2 : 1
                    let inShape = shape
                    let body = Sequential()
                    try conv("conv1", width, kernel: 3, stride: stride, padding: 1, normName: "bn1", into: body, bias: spec.norm == .none)
                    relu(into: body)
                    try conv("conv2", width, kernel: 3, padding: 1, normName: "bn2", into: body, bias: spec.norm == .none)
                    var shortcut: Sequential? = nil
                    if stride != 1 || inShape[0] != width {
                        let outShape = shape
                        shape = inShape
                        let s = Sequential()
                        try conv("0", width, kernel: 1, stride: stride, padding: 0, normName: "1", into: s, bias: spec.norm == .none)
                        shortcut = s
                        shape = outShape
                    }
                    layer.append(ResidualBlock(body: body, shortcut: shortcut), name: String(b))
                }
                net.append(layer, name: "layer\(stage + 1)")
            }
            net.append(AdaptiveAvgPool2d(outputSize: 1))
            shape = [shape[0], 1, 1]
            net.append(Flatten())
            try linear("fc", spec.classes, normName: nil)
            classifier = "fc"
        }
        return Model(spec: spec, network: net, classifierName: classifier)
    }
}
