import Foundation
import NN
import Tensor
import Wire

/// How `WeightedAverage` keeps its running sums.
public enum AggregationPrecision: String, Sendable, Codable, CaseIterable {
    /// Float64 sums (2× the model's size): a Float32 value times an integer example count is
    /// exact in Float64, so the sums, and the average rounded once to Float32, do not depend
    /// on the order in which updates arrive — runs with the same seed give the same model
    /// bit for bit. (The exception: an element whose clients' values differ so much in
    /// magnitude that a Float64 partial sum rounds — and then only if that rounding changes
    /// the Float32 result, a chance of about 2⁻²⁹ for such an element.)
    case float64
    /// Float32 sums (1× the model's size, and a fold moves 1.6× fewer bytes): the average's
    /// last bits depend on the order in which updates arrive, so two runs agree to about
    /// 1e-7 relative, not bit for bit.
    case float32
}

/// The tensors an update must carry — names and shapes, in order — and the checks that one
/// does: what `WeightedAverage` folds and what a client loads are checked the same way.
public struct UpdateTemplate: Sendable {
    /// Names and shapes, in order.
    public let entries: [(name: String, shape: [Int])]
    /// Elements of each entry.
    let counts: [Int]
    /// Position of each name in `entries`.
    let index: [String: Int]

    public init(_ entries: [(name: String, shape: [Int])]) {
        self.entries = entries
        counts = entries.map { $0.shape.reduce(1, *) }
        index = Dictionary(uniqueKeysWithValues: entries.enumerated().map { ($1.name, $0) })
    }

    /// Checks that `tensors` is a complete, well-formed update for this template: names,
    /// shapes, dtype and sizes, and with `values` also that every value is finite.
    /// - Throws: `FederatedError.badUpdate` naming the first problem.
    public func validate(_ tensors: [WireTensor], client: String, round: UInt64, values: Bool = true) throws {
        func bad(_ r: String) -> FederatedError { .badUpdate(client: client, round: round, reason: r) }
        var seen = Set<String>()
        for t in tensors {
            guard let i = index[t.name] else { throw bad("unexpected tensor \(t.name)") }
            guard seen.insert(t.name).inserted else { throw bad("tensor \(t.name) sent twice") }
            guard t.shape == entries[i].shape else { throw bad("tensor \(t.name) has shape \(t.shape), expected \(entries[i].shape)") }
            guard t.dtype == .float32, t.bytes.count == counts[i] * 4 else {
                throw bad("tensor \(t.name) is not \(counts[i]) Float32 values")
            }
            if values {
                let finite = t.bytes.withUnsafeBytes { raw -> Bool in
                    let p = raw.bindMemory(to: Float.self)
                    return Reductions.allFinite(p.baseAddress!, count: p.count)
                }
                guard finite else { throw bad(Self.nonFinite(t.name)) }
            }
        }
        if seen.count != entries.count {
            let missing = entries.map(\.name).filter { !seen.contains($0) }
            throw bad("sent \(seen.count) tensors; expected \(entries.count) (missing \(missing.prefix(3).joined(separator: ", "))\(missing.count > 3 ? ", …" : ""))")
        }
    }

    static func nonFinite(_ name: String) -> String { "tensor \(name) contains NaN or infinite values" }
}

/// Norm clipping of client updates: an update farther than `bound` — the L2 distance, over
/// all its tensors, from `reference`, the global model the clients were sent — counts as the
/// reference plus its difference scaled down to `bound`. One client, honest or not, then
/// moves the global model by at most its share of the examples times `bound` in a round.
public struct UpdateClipping {
    /// Largest distance an update counts with.
    public let bound: Double
    /// The model updates are measured from (its memory is read at every fold and average).
    public let reference: Model

    public init(bound: Double, reference: Model) {
        precondition(bound > 0 && bound.isFinite, "the clipping bound must be positive and finite")
        self.bound = bound
        self.reference = reference
    }
}

/// Streaming weighted average of model updates: each update is checked and folded
/// into a running sum as it arrives, so the server holds one accumulator (O(model))
/// whatever the number of clients.
///
///     average = Σ_k n_k · w_k / Σ_k n_k
///
/// An update is refused whole — a missing, unexpected or repeated name, a wrong shape or
/// dtype, a NaN or infinite value — and a refused update leaves the sum as it was. Names,
/// shapes and sizes are checked before anything is added; values are checked block by
/// block just before each block is added (the block is then in cache, so the check costs
/// no extra pass over memory), and a bad value takes back the blocks already added.
/// With Float64 sums taking back is exact wherever the sums are (see `AggregationPrecision`).
public final class WeightedAverage {
    /// Names and shapes every update must have, in order.
    public var template: [(name: String, shape: [Int])] { checks.entries }
    public let precision: AggregationPrecision
    /// What every update is checked against.
    let checks: UpdateTemplate
    /// Tensor i's running sums: `counts[i]` Float64 or Float32 values.
    let sums: [UnsafeMutableRawPointer]
    var counts: [Int] { checks.counts }
    var index: [String: Int] { checks.index }
    /// Σ n_k so far.
    public internal(set) var totalWeight: Double = 0
    /// Clients folded in so far.
    public internal(set) var contributors: [String] = []
    /// Whether the sums hold this round's values (else they are stale, and the first update
    /// sets them instead of adding to them).
    var sumsLive = false
    /// Whether every sum reads zero already (given back to the system, which hands the pages
    /// back zeroed): streamed updates then start adding without a zeroing pass.
    var sumsZero = false
    /// Updates being folded as they arrive, not yet committed or taken back.
    var openStreams: [ObjectIdentifier: UpdateStream] = [:]
    /// Undo logs of this round's finished streamed updates, for the next ones to write over.
    var idleUndoLogs: [UndoLog] = []
    /// Set when values folded in could not be taken back (their undo log could not be read):
    /// the sums are wrong until `reset()`, and `writeAverage` refuses to use them.
    public internal(set) var damage: String?
    /// Norm clipping, if on: the bound and the reference model.
    public let clipping: UpdateClipping?
    /// The clipping reference's values, by template position.
    private let reference: [UnsafePointer<Float>]
    /// Σ n_k·(1 − s_k): the weight clipped updates put on the reference (s_k their scale).
    private var referenceWeight: Double = 0
    /// The last update's L2 distance from the reference, when clipping is on.
    public private(set) var lastDistance: Double?

    /// Values checked and added at a time: 16 KB of Float32, well inside L1.
    static let block = 4096

    /// - Parameter clipping: bounds each update's distance from a reference model; nil for none.
    ///   Its model must have every template tensor, with the template's shape.
    public init(template: [(name: String, shape: [Int])], precision: AggregationPrecision = .float64, clipping: UpdateClipping? = nil) {
        self.precision = precision
        let checks = UpdateTemplate(template)
        self.checks = checks
        self.clipping = clipping
        if let clipping {
            let byName = Dictionary(uniqueKeysWithValues: clipping.reference.entries.map { ($0.name, $0.value) })
            reference = template.map { entry in
                guard let t = byName[entry.name], t.shape == entry.shape else {
                    preconditionFailure("the clipping reference has no tensor \(entry.name) of shape \(entry.shape)")
                }
                return UnsafePointer(t.data)
            }
        } else {
            reference = []
        }
        let width = precision == .float64 ? 8 : 4
        sums = checks.counts.map { n in
            // Large sums on huge-page boundaries, in huge pages where the system allows: given
            // back every round, they are faulted in again 2 MiB at a time, not 4 KiB.
            let bytes = max(n, 1) * width, huge = 2 << 20
            let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: bytes >= huge ? huge : 64)
            #if os(Linux)
            if bytes >= huge { _ = madvise(raw, bytes / huge * huge, MADV_HUGEPAGE) }
            #endif
            if precision == .float64 { raw.bindMemory(to: Double.self, capacity: max(n, 1)) } else { raw.bindMemory(to: Float.self, capacity: max(n, 1)) }
            return raw
        }
    }

    deinit { for s in sums { s.deallocate() } }

    /// Bytes held by the running sums.
    public var accumulatorBytes: Int { counts.reduce(0) { $0 + max($1, 1) } * (precision == .float64 ? 8 : 4) }

    /// Empties the average for the next round, keeping the sums' memory: a fresh
    /// accumulator the size of the model costs more in page faults than a fold.
    public func reset() {
        for stream in openStreams.values { stream.abandon() }
        openStreams = [:]
        closeIdleUndoLogs()
        sumsLive = false
        damage = nil
        totalWeight = 0
        referenceWeight = 0
        contributors = []
        lastDistance = nil
    }


    /// Validates and adds one client's update with weight `weight` (its number of examples).
    ///
    /// With `clipping`, an update farther than its bound from the reference counts as the
    /// reference plus its difference scaled down to the bound: a first pass measures the
    /// distance (and finds any NaN or infinite value before anything is added), then the
    /// update is folded with weight n·s and the reference with n·(1 − s), s = bound / distance.
    public func add(_ tensors: [WireTensor], weight: Double, client: String, round: UInt64) throws {
        guard weight > 0, weight.isFinite else {
            throw FederatedError.badUpdate(client: client, round: round, reason: "weight (examples) \(weight) must be positive")
        }
        try checks.validate(tensors, client: client, round: round, values: false)
        let examples = weight
        var scale = 1.0
        if let clipping {
            let distance = try distanceFromReference(tensors, client: client, round: round)
            lastDistance = distance
            if distance > clipping.bound { scale = clipping.bound / distance }
        }
        let weight = examples * scale  // exactly `examples` when not clipped
        // The first update sets the sums (no pass over a zeroed buffer); a refused first
        // update leaves them unused, so it needs no taking back.
        let first = !sumsLive
        sumsZero = false
        var added: [(tensor: Int, upTo: Int)] = []
        for (position, t) in tensors.enumerated() {
            let i = index[t.name]!
            let badAt: Int? = t.bytes.withUnsafeBytes { raw in
                let x = raw.bindMemory(to: Float.self).baseAddress!
                var start = 0
                while start < counts[i] {
                    let n = min(Self.block, counts[i] - start)
                    guard Reductions.allFinite(x + start, count: n) else { return start }
                    fold(x + start, into: i, at: start, count: n, weight: weight, mode: first ? .set : .add)
                    start += n
                }
                return nil
            }
            if let badAt {
                if !first {
                    added.append((position, badAt))
                    for (p, upTo) in added {
                        tensors[p].bytes.withUnsafeBytes { raw in
                            fold(raw.bindMemory(to: Float.self).baseAddress!, into: index[tensors[p].name]!, at: 0, count: upTo,
                                 weight: weight, mode: .subtract)
                        }
                    }
                }
                throw FederatedError.badUpdate(client: client, round: round, reason: UpdateTemplate.nonFinite(t.name))
            }
            added.append((position, counts[i]))
        }
        totalWeight += examples
        if scale < 1 { referenceWeight += examples - weight }
        contributors.append(client)
        sumsLive = true
    }

    /// The L2 distance of `tensors` (already validated) from the clipping reference, in one
    /// pass that also refuses a NaN or infinite value before anything is added.
    private func distanceFromReference(_ tensors: [WireTensor], client: String, round: UInt64) throws -> Double {
        var squares = 0.0
        for t in tensors {
            let i = index[t.name]!, g = reference[i]
            let part = t.bytes.withUnsafeBytes { raw -> Double in
                let x = raw.bindMemory(to: Float.self).baseAddress!
                var sum = 0.0, start = 0
                while start < counts[i] {
                    let n = min(Self.block, counts[i] - start)
                    var part = Reductions.sumOfSquaredDifferences(x + start, g + start, count: n)
                    if !part.isFinite {  // Float overflows past 1.8e19 apart: again in Double
                        part = 0
                        for j in start..<start + n { let d = Double(x[j]) - Double(g[j]); part += d * d }
                    }
                    sum += part
                    start += n
                }
                return sum
            }
            // Finite Float values differ by at most 7e38, whose square Double holds: a sum
            // that is not finite means a value that is not.
            guard part.isFinite else { throw FederatedError.badUpdate(client: client, round: round, reason: UpdateTemplate.nonFinite(t.name)) }
            squares += part
        }
        return squares.squareRoot()
    }

    enum FoldMode { case set, add, subtract }

    /// sums[i][at..<at+count] (=, +=, −=) weight · x[0..<count]. Plain loops the compiler
    /// vectorizes; memory-bound, so the Float64 conversion is free.
    func fold(_ x: UnsafePointer<Float>, into i: Int, at: Int, count: Int, weight: Double, mode: FoldMode) {
        switch precision {
        case .float64:
            let s = sums[i].assumingMemoryBound(to: Double.self) + at
            switch mode {
            case .set: for j in 0..<count { s[j] = weight * Double(x[j]) }
            case .add: for j in 0..<count { s[j] += weight * Double(x[j]) }
            case .subtract: for j in 0..<count { s[j] -= weight * Double(x[j]) }
            }
        case .float32:
            let s = sums[i].assumingMemoryBound(to: Float.self) + at, w = Float(weight)
            switch mode {
            case .set: for j in 0..<count { s[j] = w * x[j] }
            case .add: for j in 0..<count { s[j] += w * x[j] }
            case .subtract: for j in 0..<count { s[j] -= w * x[j] }
            }
        }
    }

    /// Writes the weighted average of everything added straight into `model`'s tensors of
    /// the same names (no intermediate copy); returns false, writing nothing, when nothing
    /// was added. The same values as `result()`.
    ///
    /// With `releasingSums`, the sums' memory goes back to the system as it is read, block by
    /// block, so the model's pages being written and the sums never add up to more than the
    /// sums alone; the average is then empty, as after `reset()`, and the sums come back,
    /// zeroed, page by page as the next round folds into them.
    /// - Throws: `NNError` naming a template tensor the model lacks or shapes differently,
    ///   before anything is written.
    public func writeAverage(into model: Model, releasingSums: Bool = false) throws -> Bool {
        _ = rollBackOpenStreams()
        closeIdleUndoLogs()
        guard totalWeight > 0, damage == nil else { return false }
        let byName = Dictionary(uniqueKeysWithValues: model.entries.map { ($0.name, $0.value) })
        for entry in template {
            guard let t = byName[entry.name] else { throw NNError.unexpectedTensor(name: entry.name, shape: entry.shape) }
            guard t.shape == entry.shape else { throw NNError.tensorShape(name: entry.name, expected: t.shape, actual: entry.shape) }
        }
        for (i, entry) in template.enumerated() { writeMean(i, to: byName[entry.name]!, releasing: releasingSums) }
        if releasingSums {
            reset()
            sumsZero = true  // every block was given back
        }
        return true
    }

    /// Values written, then given back, at a time by `writeAverage(into:releasingSums:)`: 2 MiB
    /// of Float64 sums.
    static let releaseBlock = 1 << 18

    /// Tensor `i`'s weighted mean, rounded once to Float32, into `t` (which may be the
    /// clipping reference itself: each value is read before it is written). With `releasing`,
    /// each block of sums read is given back to the system (its pages then read as zero).
    private func writeMean(_ i: Int, to t: Tensor, releasing: Bool = false) {
        if releasing && referenceWeight == 0 {
            let width = precision == .float64 ? 8 : 4
            var start = 0
            while start < counts[i] {
                let n = min(Self.releaseBlock, counts[i] - start)
                writeMean(i, to: t.data, from: start, count: n)
                zeroReleasingPages(sums[i] + start * width, byteCount: n * width)
                start += n
            }
            return
        }
        let dst = t.data, n = counts[i], inv = 1 / totalWeight
        if referenceWeight > 0 {
            let g = reference[i], r = referenceWeight
            switch precision {
            case .float64:
                let src = sums[i].assumingMemoryBound(to: Double.self)
                for j in 0..<n { dst[j] = Float((src[j] + r * Double(g[j])) * inv) }
            case .float32:
                let src = sums[i].assumingMemoryBound(to: Float.self)
                for j in 0..<n { dst[j] = Float((Double(src[j]) + r * Double(g[j])) * inv) }
            }
            if releasing { zeroReleasingPages(sums[i], byteCount: n * (precision == .float64 ? 8 : 4)) }
            return
        }
        writeMean(i, to: dst, from: 0, count: n)
    }

    /// Values `start..<start+count` of tensor `i`'s mean (no clipping reference) into `dst`.
    private func writeMean(_ i: Int, to dst: UnsafeMutablePointer<Float>, from start: Int, count: Int) {
        let inv = 1 / totalWeight
        switch precision {
        case .float64:
            let src = sums[i].assumingMemoryBound(to: Double.self)
            for j in start..<start + count { dst[j] = Float(src[j] * inv) }
        case .float32:
            let src = sums[i].assumingMemoryBound(to: Float.self)
            for j in start..<start + count { dst[j] = Float(Double(src[j]) * inv) }
        }
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
    // Scaled by the reciprocal of the total, as `WeightedAverage` does (a division per
    // value would cost more than the fold); in Float64, before the one rounding to Float32.
    let inverse = 1 / weights.reduce(0, +)
    return (0..<values[0].count).map { j in
        Float(zip(values, weights).reduce(0.0) { $0 + Double($1.0[j]) * $1.1 } * inverse)
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

    /// The tensors `include` selects, as wire tensors that *share the model's memory*: no
    /// copy, so sending the model to many clients costs no memory of its own.
    ///
    /// They read the model at the moment each chunk is encoded, so the model must not be
    /// written until every send of them has completed, failed or been abandoned (closed).
    /// The coordinator writes its model only between rounds, after `sendAll` has returned.
    public func wireTensorViews(where include: (StateEntry) -> Bool) -> [WireTensor] {
        entries.filter(include).map { e in
            try! WireTensor(name: e.name, shape: e.value.shape, dtype: .float32,
                            bytes: Data(bytesNoCopy: UnsafeMutableRawPointer(e.value.data), count: e.value.count * 4, deallocator: .none))
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
        if requireAll {
            try UpdateTemplate(allowedEntries.map { ($0.name, $0.value.shape) }).validate(tensors, client: peer, round: round)
        } else {
            let names = Set(tensors.map(\.name))
            try UpdateTemplate(allowedEntries.filter { names.contains($0.name) }.map { ($0.name, $0.value.shape) })
                .validate(tensors, client: peer, round: round)
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
