import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Tensor
import Wire

extension WeightedAverage {
    /// Starts folding one client's update as it arrives, piece by piece (`TensorStreamEvent`s
    /// from a `PayloadStream`), so that the server never holds the update whole.
    ///
    /// Every value is checked (finite) and written to an undo log before it is added; `commit`
    /// counts the update once all of it has arrived and its checksum held, and `rollback` takes
    /// out what was added if it fails on the way (a NaN, a wrong tensor, a bad checksum, a
    /// dropped connection, the round's deadline). With Float64 sums taking out is exact (see
    /// `AggregationPrecision`), whatever else was added meanwhile.
    ///
    /// Streamed updates cannot be norm-clipped (the distance needs the whole update before
    /// anything is added); with `clipping` this throws.
    /// - Parameters:
    ///   - weight: the update's number of examples, known from its envelope before its tensors.
    ///   - undoDirectory: where the undo log lives: an unnamed file, gone when closed.
    /// - Throws: `FederatedError.badUpdate` for a weight that is not positive, with clipping, or
    ///   when the undo log cannot be created.
    public func beginStream(weight: Double, client: String, round: UInt64, undoDirectory: String) throws -> UpdateStream {
        guard weight > 0, weight.isFinite else {
            throw FederatedError.badUpdate(client: client, round: round, reason: "weight (examples) \(weight) must be positive")
        }
        guard clipping == nil else {
            throw FederatedError.badUpdate(client: client, round: round, reason: "a streamed update cannot be norm-clipped; the server should not have accepted one")
        }
        let log: UndoLog
        do {
            log = try takeUndoLog(in: undoDirectory)
        } catch {
            throw FederatedError.badUpdate(client: client, round: round, reason: "the server cannot keep an undo log in \(undoDirectory) (\(error)); the update was not used")
        }
        if !sumsLive {
            // Updates streaming at once all add: the sums start at zero. Sums given back last
            // round already read zero; zeroing them again would fault every page in at once.
            if !sumsZero {
                for (i, s) in sums.enumerated() { memset(s, 0, max(counts[i], 1) * (precision == .float64 ? 8 : 4)) }
            }
            sumsLive = true
        }
        sumsZero = false
        let stream = UpdateStream(average: self, weight: weight, client: client, round: round, log: log)
        openStreams[ObjectIdentifier(stream)] = stream
        return stream
    }

    /// A finished update's undo log to write over, else a new one. Writing over pages the page
    /// cache already holds costs a copy; a new log costs the system a page allocation for every
    /// 4 KiB and a free when it closes, five times as much (see README, "Aggregation").
    func takeUndoLog(in directory: String) throws -> UndoLog {
        let now = DispatchTime.now().uptimeNanoseconds
        while let log = idleUndoLogs.popLast() {
            if log.directory == directory, log.isOpen, now &- log.created < UndoLog.reuseNanoseconds {
                log.rewind()
                return log
            }
            log.close()
        }
        return try UndoLog(directory: directory)
    }

    /// Keeps a finished update's log for the next update of this round to write over.
    func finished(_ log: UndoLog) {
        if log.isOpen { idleUndoLogs.append(log) }
        closeStaleUndoLogs()
    }

    /// Closes the logs kept for reuse that are older than `UndoLog.reuseNanoseconds`, before
    /// the system's writeback could put their dirty pages on disk.
    public func closeStaleUndoLogs() {
        guard !idleUndoLogs.isEmpty else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        idleUndoLogs.removeAll { log in
            guard now &- log.created >= UndoLog.reuseNanoseconds else { return false }
            log.close()
            return true
        }
    }

    /// Closes the logs kept for reuse: their pages go back to the system, never written to disk.
    func closeIdleUndoLogs() {
        for log in idleUndoLogs { log.close() }
        idleUndoLogs = []
    }

    /// Takes out every update still streaming (a round closing with updates half-arrived).
    /// - Returns: their clients.
    public func rollBackOpenStreams() -> [String] {
        let open = openStreams.values.sorted { $0.client < $1.client }
        for stream in open { stream.rollback() }
        return open.map(\.client)
    }

    /// One client's update being folded as it arrives; see `WeightedAverage.beginStream`.
    public final class UpdateStream {
        public let client: String
        public let round: UInt64
        /// The update's number of examples.
        public let weight: Double
        public enum State: Equatable { case open, committed, rolledBack, abandoned }
        public private(set) var state = State.open

        private let average: WeightedAverage
        /// What was added, to take it out again (internal: a test makes it unreadable).
        let log: UndoLog
        /// What was added, in the log's order: a count of values from the start of a tensor.
        private var added: [(tensor: Int, count: Int)] = []
        private var seen: [Bool]
        /// The tensor whose data is arriving, and how many of its values were added.
        private var current: Int?
        private var done = 0
        /// Data staged until a whole `stageValues` (or the tensor's end) has arrived: aligned,
        /// and each value checked, logged and added once, in cache.
        private let stage: UnsafeMutableRawPointer
        private var staged = 0
        static let stageValues = 8192  // 32 KiB: one per update arriving, so kept small

        /// Bytes of tensor data received.
        public private(set) var bytes = 0

        init(average: WeightedAverage, weight: Double, client: String, round: UInt64, log: UndoLog) {
            self.average = average
            self.weight = weight
            self.client = client
            self.round = round
            self.log = log
            seen = Array(repeating: false, count: average.counts.count)
            stage = UnsafeMutableRawPointer.allocate(byteCount: Self.stageValues * 4, alignment: 64)
        }

        deinit { stage.deallocate() }

        private func bad(_ reason: String) -> FederatedError { .badUpdate(client: client, round: round, reason: reason) }

        /// Takes the next piece of the update.
        /// - Throws: `FederatedError.badUpdate` naming the problem; then call `rollback`.
        public func take(_ event: TensorStreamEvent) throws {
            guard state == .open else { throw bad("the update was already \(state)") }
            switch event {
            case .begin(let name, let shape, let dtype, let byteCount):
                guard current == nil else { throw bad("tensor \(name) starts inside another") }
                guard let i = average.index[name] else { throw bad("unexpected tensor \(name)") }
                guard !seen[i] else { throw bad("tensor \(name) sent twice") }
                let expected = average.checks.entries[i].shape
                guard shape.count == expected.count, zip(shape, expected).allSatisfy({ $0 == Int64($1) }) else {
                    throw bad("tensor \(name) has shape \(shape), expected \(expected)")
                }
                guard dtype == .float32, byteCount == average.counts[i] * 4 else {
                    throw bad("tensor \(name) is not \(average.counts[i]) Float32 values")
                }
                seen[i] = true
                current = i
                done = 0
                staged = 0
                added.append((i, 0))
            case .data(let piece):
                guard current != nil else { throw bad("tensor data outside a tensor") }
                // Into the undo log as received, before any of it is added: one large write
                // (the page cache then works in large folios) instead of one per staged block.
                // Values logged but never added (after a failure) are at the log's end, past
                // everything `rollback` reads.
                do {
                    try log.append(piece)
                } catch {
                    throw bad("the server could not write its undo log (\(error)); the update was not used")
                }
                var input = piece
                while !input.isEmpty {
                    let n = min(Self.stageValues * 4 - staged, input.count)
                    (stage + staged).copyMemory(from: input.baseAddress!, byteCount: n)
                    staged += n
                    bytes += n
                    input = UnsafeRawBufferPointer(rebasing: input[n...])
                    if staged == Self.stageValues * 4 { try addStaged() }
                }
            case .end:
                guard let i = current else { throw bad("tensor end outside a tensor") }
                try addStaged()
                guard done == average.counts[i] else {
                    throw bad("tensor \(average.checks.entries[i].name) carried \(done) values, expected \(average.counts[i])")
                }
                current = nil
            }
        }

        /// Checks, then adds the staged values (already in the log, so whatever was added can
        /// be taken out).
        private func addStaged() throws {
            guard let i = current, staged > 0 else { return }
            guard staged % 4 == 0, done + staged / 4 <= average.counts[i] else {
                throw bad("tensor \(average.checks.entries[i].name) carries more than its \(average.counts[i]) values")
            }
            let n = staged / 4
            let x = stage.assumingMemoryBound(to: Float.self)
            guard Reductions.allFinite(x, count: n) else { throw bad(UpdateTemplate.nonFinite(average.checks.entries[i].name)) }
            var start = 0
            while start < n {
                let m = min(WeightedAverage.block, n - start)
                average.fold(x + start, into: i, at: done + start, count: m, weight: weight, mode: .add)
                start += m
            }
            added[added.count - 1].count += n
            done += n
            staged = 0
        }

        /// Counts the update in the average: call once the payload is complete and verified.
        /// - Throws: `FederatedError.badUpdate` when a tensor is missing or unfinished; then call `rollback`.
        public func commit() throws {
            guard state == .open else { throw bad("the update was already \(state)") }
            guard current == nil else { throw bad("the update ended inside tensor \(average.checks.entries[current!].name)") }
            let missing = zip(average.checks.entries, seen).filter { !$1 }.map(\.0.name)
            guard missing.isEmpty else {
                throw bad("sent \(seen.count - missing.count) tensors; expected \(seen.count) (missing \(missing.prefix(3).joined(separator: ", "))\(missing.count > 3 ? ", …" : ""))")
            }
            state = .committed
            average.totalWeight += weight
            average.contributors.append(client)
            close()
        }

        /// Takes out of the sums everything this update added (read back from its undo log).
        public func rollback() {
            guard state == .open else { return }
            state = .rolledBack
            defer { close() }
            var offset = 0
            for (i, count) in added {
                var start = 0
                while start < count {
                    let n = min(Self.stageValues, count - start)
                    do {
                        try log.read(into: stage, bytes: n * 4, at: offset)
                    } catch {
                        average.damage = "values of client \"\(client)\"'s update could not be taken back (\(error))"
                        return
                    }
                    average.fold(stage.assumingMemoryBound(to: Float.self), into: i, at: start, count: n, weight: weight, mode: .subtract)
                    start += n
                    offset += n * 4
                }
            }
        }

        /// Drops the update without touching the sums (they are being reset).
        func abandon() {
            guard state == .open else { return }
            state = .abandoned
            close()
        }

        private func close() {
            average.finished(log)
            average.openStreams[ObjectIdentifier(self)] = nil
        }
    }
}

/// The values a streamed update added, kept in an `UnnamedFile` so that they can be taken out
/// again. Once its update is finished it is written over by a later update of the same round
/// (`rewind`), and closed when the round ends or after `reuseNanoseconds`, whichever comes
/// first; closing drops its pages.
final class UndoLog {
    private let file: UnnamedFile
    /// Bytes written since the last `rewind`.
    private var size = 0
    let directory: String
    /// When the file was created (uptime nanoseconds).
    let created: UInt64

    /// How long a log is reused: its pages are dirty, and the system writes dirty pages to
    /// disk after 30 s by default; closed sooner, they never reach it.
    nonisolated(unsafe) static var reuseNanoseconds: UInt64 = 20_000_000_000  // var: a test shortens it

    init(directory: String) throws {
        file = try UnnamedFile(directory: directory)
        self.directory = directory
        created = DispatchTime.now().uptimeNanoseconds
    }

    var isOpen: Bool { file.descriptor >= 0 }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try file.write(bytes, at: size)
        size += bytes.count
    }

    /// Reads `bytes` bytes at `offset`, which must lie within what was appended since `rewind`.
    func read(into buffer: UnsafeMutableRawPointer, bytes: Int, at offset: Int) throws {
        guard offset + bytes <= size else { throw UnnamedFile.IOError(call: "read past the undo log's end", code: EIO) }
        try file.read(into: buffer, count: bytes, at: offset)
    }

    /// Starts again at the beginning, writing over the last update's values.
    func rewind() { size = 0 }

    func close() { file.close() }
}
