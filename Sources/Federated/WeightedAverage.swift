import Foundation
import NN
import Tensor
import Wire

/// Streaming weighted average of model updates: each update is checked and folded
/// into a running sum as it arrives, so the server holds one accumulator (O(model))
/// whatever the number of clients.
///
///     average = Σ_k n_k · w_k / Σ_k n_k
///
/// An update is validated whole — every expected name present once, shapes equal,
/// Float32, every value finite — before any of it is added; a refused update leaves
/// the sum untouched.
///
/// The sums are kept in Double: a Float32 value times an integer example count is
/// exact there, so the average does not depend on the order in which clients'
/// results arrive, and runs with the same seed give the same model bit for bit.
public final class WeightedAverage {
    /// Names and shapes every update must have, in order.
    public let template: [(name: String, shape: [Int])]
    private let sums: [UnsafeMutableBufferPointer<Double>]
    private let index: [String: Int]
    /// Σ n_k so far.
    public private(set) var totalWeight: Double = 0
    /// Clients folded in so far.
    public private(set) var contributors: [String] = []

    public init(template: [(name: String, shape: [Int])]) {
        self.template = template
        sums = template.map { .allocate(capacity: max($0.shape.reduce(1, *), 1)) }
        index = Dictionary(uniqueKeysWithValues: template.enumerated().map { ($1.name, $0) })
    }

    deinit { for s in sums { s.deallocate() } }

    /// Checks that `tensors` is a complete, well-formed update for this template.
    /// - Throws: `FederatedError.badUpdate` naming the first problem.
    public func validate(_ tensors: [WireTensor], client: String, round: UInt64) throws {
        func bad(_ r: String) -> FederatedError { .badUpdate(client: client, round: round, reason: r) }
        var seen = Set<String>()
        for t in tensors {
            guard let i = index[t.name] else { throw bad("unexpected tensor \(t.name)") }
            guard seen.insert(t.name).inserted else { throw bad("tensor \(t.name) sent twice") }
            guard t.shape == template[i].shape else { throw bad("tensor \(t.name) has shape \(t.shape), expected \(template[i].shape)") }
            guard t.dtype == .float32, t.bytes.count == template[i].shape.reduce(1, *) * 4 else {
                throw bad("tensor \(t.name) is not \(template[i].shape.reduce(1, *)) Float32 values")
            }
            let finite = t.bytes.withUnsafeBytes { raw -> Bool in
                let p = raw.bindMemory(to: Float.self)
                return Reductions.allFinite(p.baseAddress!, count: p.count)
            }
            guard finite else { throw bad("tensor \(t.name) contains NaN or infinite values") }
        }
        if seen.count != template.count {
            let missing = template.map(\.name).filter { !seen.contains($0) }
            throw bad("sent \(seen.count) tensors; expected \(template.count) (missing \(missing.prefix(3).joined(separator: ", "))\(missing.count > 3 ? ", …" : ""))")
        }
    }

    /// Validates and adds one client's update with weight `weight` (its number of examples).
    public func add(_ tensors: [WireTensor], weight: Double, client: String, round: UInt64) throws {
        guard weight > 0, weight.isFinite else {
            throw FederatedError.badUpdate(client: client, round: round, reason: "weight (examples) \(weight) must be positive")
        }
        try validate(tensors, client: client, round: round)
        let first = contributors.isEmpty
        let w = weight
        for t in tensors {
            let sum = sums[index[t.name]!]
            t.bytes.withUnsafeBytes { raw in
                let p = raw.bindMemory(to: Float.self)
                let dst = sum.baseAddress!
                if first {
                    // The first update initializes the sum: no pass over a zeroed buffer.
                    for i in 0..<p.count { dst[i] = w * Double(p[i]) }
                } else {
                    for i in 0..<p.count { dst[i] += w * Double(p[i]) }
                }
            }
        }
        totalWeight += weight
        contributors.append(client)
    }

    /// Writes the weighted average of everything added straight into `model`'s tensors of
    /// the same names (no intermediate copy); returns false, writing nothing, when nothing
    /// was added. The same values as `result()`.
    /// - Throws: `NNError` naming a template tensor the model lacks or shapes differently,
    ///   before anything is written.
    public func writeAverage(into model: Model) throws -> Bool {
        guard totalWeight > 0 else { return false }
        let byName = Dictionary(uniqueKeysWithValues: model.entries.map { ($0.name, $0.value) })
        for entry in template {
            guard let t = byName[entry.name] else { throw NNError.unexpectedTensor(name: entry.name, shape: entry.shape) }
            guard t.shape == entry.shape else { throw NNError.tensorShape(name: entry.name, expected: t.shape, actual: entry.shape) }
        }
        for (i, entry) in template.enumerated() { writeMean(i, to: byName[entry.name]!) }
        return true
    }

    /// Tensor `i`'s weighted mean, rounded once to Float32, into `t`.
    private func writeMean(_ i: Int, to t: Tensor) {
        let src = sums[i].baseAddress!, inv = 1 / totalWeight
        for j in 0..<t.count { t.data[j] = Float(src[j] * inv) }
    }

    /// The weighted average of everything added (nil when nothing was).
    public func result() -> StateDictionary? {
        guard totalWeight > 0 else { return nil }
        var d = StateDictionary()
        for (i, entry) in template.enumerated() {
            let t = Tensor(zeros: entry.shape)
            writeMean(i, to: t)
            d[entry.name] = t
        }
        return d
    }
}

/// Pure weighted mean of small arrays, the definition `WeightedAverage` must agree with.
public func weightedAverage(_ values: [[Float]], weights: [Double]) -> [Float] {
    precondition(values.count == weights.count && !values.isEmpty)
    let total = weights.reduce(0, +)
    return (0..<values[0].count).map { j in
        Float(zip(values, weights).reduce(0.0) { $0 + Double($1.0[j]) * $1.1 } / total)
    }
}

extension Model {
    /// The tensors `include` selects, as wire tensors (Float32, little-endian).
    public func wireTensors(where include: (StateEntry) -> Bool) -> [WireTensor] {
        entries.filter(include).map { e in
            try! WireTensor(name: e.name, shape: e.value.shape, dtype: .float32,
                            bytes: Data(buffer: UnsafeBufferPointer(start: e.value.data, count: e.value.count)))
        }
    }

    /// Copies received tensors into the model after checking every one of them.
    ///
    /// Each name must be one of `allowed` (a subset of the model's tensors, e.g. the
    /// shared ones) with the model's shape, Float32 and finite; with `requireAll`,
    /// every allowed tensor must be present. Nothing is written unless all pass.
    /// - Throws: `FederatedError.badUpdate` (with `peer` and `round`) naming the problem.
    public func load(_ tensors: [WireTensor], allowed: (StateEntry) -> Bool, requireAll: Bool, peer: String, round: UInt64) throws {
        let allowedEntries = entries.filter(allowed)
        let checker = WeightedAverage(template: allowedEntries.map { ($0.name, $0.value.shape) })
        if requireAll {
            try checker.validate(tensors, client: peer, round: round)
        } else {
            let names = Set(tensors.map(\.name))
            let subset = WeightedAverage(template: allowedEntries.filter { names.contains($0.name) }.map { ($0.name, $0.value.shape) })
            try subset.validate(tensors, client: peer, round: round)
        }
        let byName = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        for t in tensors {
            let dst = byName[t.name]!.value
            t.bytes.withUnsafeBytes { raw in
                UnsafeMutableRawPointer(dst.data).copyMemory(from: raw.baseAddress!, byteCount: dst.count * 4)
            }
        }
    }
}
