import Tensor

/// Layers applied in order; named children contribute their tensors under `name.`.
public final class Sequential: Layer {
    public var path: String = "" { didSet { renameChildren() } }
    public var needsInputGradient = true {
        didSet { children.first?.layer.needsInputGradient = needsInputGradient }
    }
    /// The layers, each with the name its tensors are filed under (nil for layers without tensors).
    public private(set) var children: [(name: String?, layer: any Layer)] = []

    public init() {}

    /// Appends `layer` under `name` (which must be unique within this container).
    public func append(_ layer: any Layer, name: String? = nil) {
        precondition(name == nil || !children.contains { $0.name == name }, "duplicate layer name \(name!)")
        children.append((name, layer))
        renameChildren()
    }

    private func renameChildren() {
        for (i, child) in children.enumerated() {
            let local = child.name ?? "\(type(of: child.layer))\(i)".lowercased()
            child.layer.path = path.isEmpty ? local : "\(path).\(local)"
        }
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        var x = input
        for child in children { x = try child.layer.forward(x, training: training) }
        return x
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        var d = dOutput
        for child in children.reversed() { d = child.layer.backward(d) }
        return d
    }

    public var state: [StateEntry] {
        children.flatMap { child -> [StateEntry] in
            let s = child.layer.state
            guard let name = child.name else { return s }
            return s.map { $0.prefixed(name) }
        }
    }
}

/// A ResNet basic block: conv → norm → ReLU → conv → norm, plus the shortcut, then ReLU.
///
/// input (N, C, H, W) → (N, O, H/stride, W/stride). The shortcut is the identity
/// when shapes agree, else a 1×1 convolution with stride (and a norm).
public final class ResidualBlock: Layer {
    public var path = "block" { didSet { body.path = path; shortcut?.path = path.isEmpty ? "shortcut" : "\(path).shortcut" } }
    public var needsInputGradient = true {
        didSet { body.needsInputGradient = needsInputGradient; shortcut?.needsInputGradient = needsInputGradient }
    }
    let body: Sequential
    let shortcut: Sequential?
    private let finalReLU = ReLU()
    private var dInput = Workspace()
    private var sum = Workspace()

    init(body: Sequential, shortcut: Sequential?) {
        self.body = body; self.shortcut = shortcut
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let b = try body.forward(input, training: training)
        let s = try shortcut?.forward(input, training: training) ?? input
        guard b.shape == s.shape else {
            throw NNError.shape(layer: path, expected: b.shape.map(String.init), actual: s.shape, what: "shortcut output")
        }
        let out = sum.get(b.shape)
        for i in 0..<out.count { out.data[i] = b.data[i] + s.data[i] }
        return try finalReLU.forward(out, training: training)
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let d = finalReLU.backward(dOutput)
        let dBody = body.backward(d)
        guard needsInputGradient else { return dBody }
        let dShort = shortcut?.backward(d) ?? d
        let dIn = dInput.get(dBody.shape)
        for i in 0..<dIn.count { dIn.data[i] = dBody.data[i] + dShort.data[i] }
        return dIn
    }

    public var state: [StateEntry] {
        body.state + (shortcut?.state.map { $0.prefixed("shortcut") } ?? [])
    }
}
