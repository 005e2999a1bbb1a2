import XCTest
import Foundation
import NN
import Tensor
import Wire
@testable import Federated

/// Updates folded as their chunks arrive (`WeightedAverage.UpdateStream` behind a `PayloadStream`).
final class UpdateStreamTests: XCTestCase {
    let template: [(name: String, shape: [Int])] = [("w", [3, WeightedAverage.UpdateStream.stageValues / 2 + 5]), ("b", [7]), ("v", [2, 3])]

    func randomUpdates(count: Int, seed: UInt64) -> [[WireTensor]] {
        FederatedTests.randomUpdates(template, count: count, seed: seed)
    }

    /// The update's chunks as a client sends them in the streamed order: the carrier's
    /// reference, then the chunks.
    func chunks(_ update: [WireTensor], chunkSize: Int) throws -> (Fedkit_V1_ChunkedPayload, [Fedkit_V1_PayloadChunk]) {
        var chunker = PayloadChunker(chunkSize: chunkSize, inlineLimit: 0)
        chunker.streamed = true
        var result = Fedkit_V1_FitResult()
        result.parameters = Fedkit_V1_Payload(update)
        let envelopes = try chunker.split(Envelope(.fitResult(result)))
        guard case .fitResult(let carrier) = envelopes[0].body, case .chunked(let reference)? = carrier.parameters.content else {
            throw XCTSkip("the carrier does not come first")
        }
        return (reference, envelopes.dropFirst().map { e in
            guard case .chunk(let c) = e.body else { fatalError("not a chunk") }
            return c
        })
    }

    /// Streams `update` into `average`, the chunks taken in the order `order` gives, stopping
    /// before chunk `stopBefore` (nil: all). Returns the stream (committed if complete).
    @discardableResult
    func stream(_ update: [WireTensor], weight: Double, client: String, into average: WeightedAverage, chunkSize: Int = 1000,
                stopBefore: Int? = nil) throws -> WeightedAverage.UpdateStream {
        let (reference, pieces) = try chunks(update, chunkSize: chunkSize)
        var payload = try PayloadStream(reference)
        let s = try average.beginStream(weight: weight, client: client, round: 1, undoDirectory: NSTemporaryDirectory())
        for (i, chunk) in pieces.enumerated() {
            if let stopBefore, i == stopBefore { return s }
            if try payload.take(chunk, { try s.take($0) }) { try s.commit() }
        }
        return s
    }

    func bits(_ d: StateDictionary?) -> [String: [UInt32]] {
        Dictionary(uniqueKeysWithValues: (d?.entries ?? []).map { ($0.name, $0.tensor.values.map(\.bitPattern)) })
    }

    /// Folded as they arrive, in chunks of any size, updates average to exactly what they
    /// average to received whole (Float64 sums), and to within rounding with Float32 sums.
    func testStreamedUpdatesAverageToWhatTheyAverageToWhole() throws {
        let updates = randomUpdates(count: 3, seed: 5)
        let weights = [3.0, 40, 7]
        for precision in AggregationPrecision.allCases {
            let whole = WeightedAverage(template: template, precision: precision)
            for (i, u) in updates.enumerated() { try whole.add(u, weight: weights[i], client: "c\(i)", round: 1) }
            for chunkSize in [1, 7, 1000, 1 << 20] where precision == .float64 || chunkSize == 1000 {
                let streamed = WeightedAverage(template: template, precision: precision)
                for (i, u) in updates.enumerated() { try stream(u, weight: weights[i], client: "c\(i)", into: streamed, chunkSize: chunkSize) }
                XCTAssertEqual(streamed.contributors, ["c0", "c1", "c2"])
                XCTAssertEqual(streamed.totalWeight, 50)
                if precision == .float64 {
                    XCTAssertEqual(bits(streamed.result()), bits(whole.result()), "chunks of \(chunkSize)")
                } else {
                    for (name, t) in whole.result()!.entries {
                        for (a, b) in zip(streamed.result()![name]!.values, t.values) { XCTAssertEqual(a, b, accuracy: 1e-6 + 1e-6 * abs(b)) }
                    }
                }
            }
        }
    }

    /// Two updates arriving at once, one of which fails half-way: what it added is taken out
    /// bit for bit, while the other goes on, and the result is that of the other alone.
    func testAnUpdateTakenBackHalfwayLeavesExactlyTheOthers() throws {
        let updates = randomUpdates(count: 3, seed: 8)
        let alone = WeightedAverage(template: template)
        try alone.add(updates[0], weight: 5, client: "a", round: 1)
        try alone.add(updates[2], weight: 9, client: "c", round: 1)

        let average = WeightedAverage(template: template)
        try average.add(updates[0], weight: 5, client: "a", round: 1)
        let (refB, chunksB) = try chunks(updates[1], chunkSize: 900)
        let (refC, chunksC) = try chunks(updates[2], chunkSize: 1300)
        var payloadB = try PayloadStream(refB), payloadC = try PayloadStream(refC)
        let b = try average.beginStream(weight: 11, client: "b", round: 1, undoDirectory: NSTemporaryDirectory())
        let c = try average.beginStream(weight: 9, client: "c", round: 1, undoDirectory: NSTemporaryDirectory())
        // Interleaved: b gets 3/4 of its chunks in, c all of its.
        var ib = 0
        for chunk in chunksC {
            if try payloadC.take(chunk, { try c.take($0) }) { try c.commit() }
            if ib < chunksB.count * 3 / 4 { _ = try payloadB.take(chunksB[ib]) { try b.take($0) }; ib += 1 }
        }
        XCTAssertGreaterThan(b.bytes, 0)
        XCTAssertEqual(average.rollBackOpenStreams(), ["b"])
        XCTAssertEqual(b.state, .rolledBack)
        XCTAssertEqual(c.state, .committed)
        XCTAssertEqual(average.contributors, ["a", "c"])
        XCTAssertEqual(bits(average.result()), bits(alone.result()))
    }

    /// A NaN in the last value, a tensor of the wrong shape, one missing: refused, and the
    /// sums are as they were.
    func testABadStreamedUpdateIsRefusedAndTakenBack() throws {
        let updates = randomUpdates(count: 2, seed: 11)
        let before = WeightedAverage(template: template)
        try before.add(updates[0], weight: 2, client: "good", round: 1)
        var nan = updates[1]
        var last = try nan[0].floats()
        last[last.count - 1] = .nan
        nan[0] = WireTensor(name: "w", shape: nan[0].shape, floats: last)
        let cases: [(String, [WireTensor], String)] = [
            ("NaN", nan, "NaN or infinite"),
            ("shape", [WireTensor(name: "b", shape: [1, 7], floats: try updates[1][1].floats())] + updates[1].filter { $0.name != "b" }, "has shape [1, 7]"),
            ("missing", Array(updates[1].dropLast()), "missing v"),
        ]
        for (name, update, reason) in cases {
            let average = WeightedAverage(template: template)
            try average.add(updates[0], weight: 2, client: "good", round: 1)
            var refused: Error?
            var s: WeightedAverage.UpdateStream?
            do {
                s = try average.beginStream(weight: 3, client: "bad", round: 1, undoDirectory: NSTemporaryDirectory())
                let (reference, pieces) = try chunks(update, chunkSize: 999)
                var payload = try PayloadStream(reference)
                for chunk in pieces where try payload.take(chunk, { try s!.take($0) }) { try s!.commit() }
            } catch {
                refused = error
                s?.rollback()
            }
            XCTAssertTrue("\(refused.map { "\($0)" } ?? "accepted")".contains(reason), "\(name): \(String(describing: refused))")
            XCTAssertEqual(average.contributors, ["good"], name)
            XCTAssertEqual(bits(average.result()), bits(before.result()), name)
        }
    }

    /// The first update of a round may arrive streamed while the sums still hold the last
    /// round's values: they start from zero.
    func testTheFirstStreamedUpdateOfARoundDoesNotAddToTheLastRoundsSums() throws {
        let updates = randomUpdates(count: 2, seed: 3)
        let average = WeightedAverage(template: template)
        try average.add(updates[0], weight: 4, client: "old", round: 1)
        average.reset()
        try stream(updates[1], weight: 6, client: "new", into: average)
        let fresh = WeightedAverage(template: template)
        try fresh.add(updates[1], weight: 6, client: "new", round: 2)
        XCTAssertEqual(bits(average.result()), bits(fresh.result()))
    }

    /// Norm clipping needs a whole update: a streamed one is refused before anything is added.
    func testAClippingAverageRefusesStreamedUpdates() throws {
        let model = try ModelSpec.digitCNN(norm: .none, widths: [4, 4, 8, 16, 8], seed: 5).build()
        let average = WeightedAverage(template: model.entries.map { ($0.name, $0.value.shape) }, clipping: UpdateClipping(bound: 1, reference: model))
        XCTAssertThrowsError(try average.beginStream(weight: 1, client: "x", round: 1, undoDirectory: NSTemporaryDirectory()))
    }

    /// An update whose undo log cannot be read back cannot be taken out: the sums are marked
    /// damaged, no average is written from them (the coordinator then voids the attempt), and
    /// `reset` starts a good average again in the same memory.
    func testAnUndoLogThatCannotBeReadBackDamagesTheSumsUntilReset() throws {
        let updates = randomUpdates(count: 3, seed: 31)
        let model = try ModelSpec.digitCNN(norm: .none, widths: [4, 4, 8, 16, 8], seed: 5).build()
        let average = WeightedAverage(template: template)
        try stream(updates[0], weight: 2, client: "good", into: average)
        let (_, pieces) = try chunks(updates[1], chunkSize: 1000)
        let bad = try stream(updates[1], weight: 5, client: "cut", into: average, stopBefore: pieces.count - 2)
        XCTAssertNil(average.damage)
        bad.log.close()  // its values can no longer be read back
        bad.rollback()
        let damage = try XCTUnwrap(average.damage, "a take-back that could not read its log went unnoticed")
        XCTAssertTrue(damage.contains("\"cut\""), damage)
        XCTAssertFalse(try average.writeAverage(into: model), "an average was written from damaged sums")
        average.reset()
        XCTAssertNil(average.damage)
        try stream(updates[2], weight: 3, client: "next", into: average)
        let alone = WeightedAverage(template: template)
        try stream(updates[2], weight: 3, client: "next", into: alone)
        XCTAssertEqual(bits(average.result()), bits(alone.result()))
    }

    /// A finished update's undo log is written over by the next update of the round (its pages
    /// are reused, not allocated again), and taking that next one back reads only its own
    /// values, not the longer update's left in the file; the round's end closes the logs.
    func testAFinishedUpdatesLogIsWrittenOverAndTakingBackReadsOnlyItsOwnValues() throws {
        let updates = randomUpdates(count: 3, seed: 41)
        let average = WeightedAverage(template: template)
        let first = try stream(updates[0], weight: 4, client: "first", into: average)
        XCTAssertEqual(first.state, .committed)
        XCTAssertEqual(average.idleUndoLogs.count, 1)
        XCTAssertTrue(first.log.isOpen, "a finished update's log was closed instead of kept for the next")
        let (_, pieces) = try chunks(updates[1], chunkSize: 1000)
        let cut = try stream(updates[1], weight: 9, client: "cut", into: average, stopBefore: pieces.count / 2)
        XCTAssertTrue(cut.log === first.log, "the next update did not write over the finished update's log")
        let beside = try stream(updates[2], weight: 2, client: "beside", into: average, stopBefore: 3)
        XCTAssertFalse(beside.log === first.log, "two open updates share one log")
        beside.rollback()
        cut.rollback()
        XCTAssertNil(average.damage)
        let alone = WeightedAverage(template: template)
        try alone.add(updates[0], weight: 4, client: "first", round: 1)
        XCTAssertTrue(bits(average.result()) == bits(alone.result()), "taking back read values that were not the update's")
        let logs = average.idleUndoLogs
        XCTAssertGreaterThanOrEqual(logs.count, 2)
        average.reset()
        XCTAssertTrue(average.idleUndoLogs.isEmpty)
        XCTAssertFalse(logs.contains { $0.isOpen }, "the round ended with undo logs still open")
    }

    /// A log kept for reuse longer than `UndoLog.reuseNanoseconds` is closed (by the
    /// coordinator's wait for stragglers, or when another update finishes) and not reused:
    /// its dirty pages never wait long enough for the system to write them to disk.
    func testALogKeptTooLongIsClosedNotReused() throws {
        let saved = UndoLog.reuseNanoseconds
        defer { UndoLog.reuseNanoseconds = saved }
        UndoLog.reuseNanoseconds = 50_000_000  // 50 ms
        let updates = randomUpdates(count: 2, seed: 47)
        let average = WeightedAverage(template: template)
        let first = try stream(updates[0], weight: 1, client: "a", into: average)
        average.closeStaleUndoLogs()
        XCTAssertEqual(average.idleUndoLogs.count, 1, "a fresh log was closed")
        Thread.sleep(forTimeInterval: 0.1)
        average.closeStaleUndoLogs()
        XCTAssertTrue(average.idleUndoLogs.isEmpty)
        XCTAssertFalse(first.log.isOpen, "a stale log was left open")
        let second = try stream(updates[1], weight: 1, client: "b", into: average)
        XCTAssertFalse(second.log === first.log)
        XCTAssertTrue(second.log.isOpen)
    }

    /// Sums given back at the end of a round read zero, and streamed updates start adding to
    /// them without zeroing them first; sums that were kept (stale) are zeroed. Either way the
    /// next round equals a fresh accumulator, bit for bit, and writing the average closes the
    /// round's undo logs.
    func testTheNextRoundStreamsIntoGivenBackOrStaleSumsAsIntoFreshOnes() throws {
        let spec = ModelSpec.digitCNN(norm: .none, widths: [4, 4, 8, 2048, 8], seed: 5)
        let template = try spec.build().entries.map { ($0.name, $0.value.shape) }
        let updates = FederatedTests.randomUpdates(template, count: 4, seed: 43)
        for release in [true, false] {
            let average = WeightedAverage(template: template)
            try average.add(updates[0], weight: 5, client: "a", round: 1)
            try stream(updates[1], weight: 3, client: "b", into: average, chunkSize: 1 << 16)
            XCTAssertFalse(average.idleUndoLogs.isEmpty)
            XCTAssertTrue(try average.writeAverage(into: try spec.build(), releasingSums: release))
            XCTAssertTrue(average.idleUndoLogs.isEmpty, "writing the average left undo logs open")
            XCTAssertEqual(average.sumsZero, release)
            average.reset()
            let fresh = WeightedAverage(template: template)
            for a in [average, fresh] {
                try stream(updates[2], weight: 7, client: "c", into: a, chunkSize: 1 << 16)
                try stream(updates[3], weight: 1, client: "d", into: a, chunkSize: 1 << 16)
            }
            XCTAssertTrue(bits(average.result()) == bits(fresh.result()), release ? "given back" : "kept")
        }
    }
}
