import Tensor

/// An ordered set of named tensors: a model's weights and buffers, or any subset
/// of them (what FedAvg averages, what FedBN keeps local).
public struct StateDictionary: @unchecked Sendable {
    public private(set) var names: [String] = []
    private var tensors: [String: Tensor] = [:]

    public init() {}

    public init(_ pairs: [(String, Tensor)]) {
        for (n, t) in pairs { self[n] = t }
    }

    public subscript(name: String) -> Tensor? {
        get { tensors[name] }
        set {
            if tensors[name] == nil, newValue != nil { names.append(name) }
            if newValue == nil, tensors[name] != nil { names.removeAll { $0 == name } }
            tensors[name] = newValue
        }
    }

    public var count: Int { names.count }
    /// Total number of elements across tensors.
    public var elementCount: Int { names.reduce(0) { $0 + tensors[$1]!.count } }

    /// (name, tensor) in insertion order.
    public var entries: [(name: String, tensor: Tensor)] { names.map { ($0, tensors[$0]!) } }
}

extension Model {
    /// A copy of the model's tensors (all of them, or those `include` selects).
    public func snapshot(where include: (StateEntry) -> Bool = { _ in true }) -> StateDictionary {
        StateDictionary(entries.filter(include).map { ($0.name, $0.value.copy()) })
    }

    /// The model's own tensors (all of them, or those `include` selects), not copies:
    /// writing to them changes the model.
    public func liveState(where include: (StateEntry) -> Bool = { _ in true }) -> StateDictionary {
        StateDictionary(entries.filter(include).map { ($0.name, $0.value) })
    }

    /// Copies the tensors of `dictionary` into the model.
    ///
    /// Every name must be one of the model's, with the same shape; with
    /// `requireAll`, every tensor of the model must also be present. Nothing is
    /// written unless all checks pass, so a bad dictionary never half-loads.
    /// - Throws: `NNError.unexpectedTensor`, `.tensorShape` or `.missingTensor`, naming the tensor and shapes.
    public func load(_ dictionary: StateDictionary, requireAll: Bool = true) throws {
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        for (name, t) in dictionary.entries {
            guard let e = byName[name] else { throw NNError.unexpectedTensor(name: name, shape: t.shape) }
            guard e.value.shape == t.shape else { throw NNError.tensorShape(name: name, expected: e.value.shape, actual: t.shape) }
        }
        if requireAll {
            for e in entries where dictionary[e.name] == nil {
                throw NNError.missingTensor(name: e.name, expectedShape: e.value.shape)
            }
        }
        for (name, t) in dictionary.entries { byName[name]!.value.assign(from: t) }
    }
}
