import NIOCore
import NIOEmbedded
import XCTest
@testable import Wire

/// Connections sharing `ReceivePermits` reassemble at most `limit` chunked payloads at once;
/// the others wait, unread, and get their turn in order when a payload completes or its
/// connection goes away.
final class ReceivePermitsTests: XCTestCase {
    /// An update split into envelopes: chunks, then the envelope that refers to them.
    private func update(round: UInt64, seed: UInt64) throws -> (envelopes: [Envelope], tensors: [WireTensor]) {
        let tensors = [WireTensor(name: "w", shape: [3000], floats: Samples.floats(3000, seed: seed))]
        var chunker = PayloadChunker(chunkSize: 4096, inlineLimit: 0)
        let envelopes = try chunker.split(Envelope(.fitResult(.with { $0.round = round; $0.parameters = Fedkit_V1_Payload(tensors) })))
        XCTAssertGreaterThan(envelopes.count, 3)
        return (envelopes, tensors)
    }

    /// A channel with only the chunking handler, reading envelopes directly.
    private func connection(_ permits: ReceivePermits, loop: EmbeddedEventLoop) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(PayloadChunkingHandler(permits: permits))
        return channel
    }

    private func received(_ channel: EmbeddedChannel) throws -> [Envelope] {
        var out: [Envelope] = []
        while let e = try channel.readInbound(as: Envelope.self) { out.append(e) }
        return out
    }

    func testASecondPayloadWaitsForTheFirstAndThenArrivesIntact() throws {
        let loop = EmbeddedEventLoop()
        let permits = ReceivePermits(limit: 1)
        let a = try connection(permits, loop: loop), b = try connection(permits, loop: loop)
        let (ua, ta) = try update(round: 1, seed: 1)
        let (ub, tb) = try update(round: 1, seed: 2)

        // a starts its payload and takes the only permit.
        try a.writeInbound(ua[0])
        XCTAssertEqual(permits.free, 0)
        // b's payload starts meanwhile: it is parked, not reassembled, however much arrives.
        for e in ub { try b.writeInbound(e) }
        loop.run()
        XCTAssertEqual(try received(b), [], "b reassembled a payload without a permit")
        // A message that is not a payload, behind b's parked chunks, waits in order too.
        try b.writeInbound(Envelope(.heartbeat(.with { $0.unixMillis = 7 })))
        XCTAssertEqual(try received(b), [])

        // a completes: its payload keeps the permit for as long as it is in memory...
        for e in ua.dropFirst() { try a.writeInbound(e) }
        try withExtendedLifetime(try received(a)) { fromA in
            XCTAssertEqual(fromA.count, 1)
            XCTAssertEqual(try fromA[0].payload?.wireTensors(), ta)
            loop.run()
            XCTAssertEqual(try received(b), [], "b got the permit while a's payload was still in use")
        }
        // ...and gives it back with its memory: b's parked envelopes are replayed in order.
        loop.run()
        try withExtendedLifetime(try received(b)) { fromB in
            XCTAssertEqual(fromB.map(\.kind), ["fit_result", "heartbeat"])
            XCTAssertEqual(try fromB.first?.payload?.wireTensors(), tb)
            XCTAssertEqual(permits.free, 0, "b's permit was returned while its payload was in use")
        }
        XCTAssertEqual(permits.free, 1, "b's permit was not returned with its payload's memory")
        _ = try a.finish(); _ = try b.finish()
    }

    func testAClosedConnectionGivesItsPermitBackAndAWaiterThatLeftGetsNone() throws {
        let loop = EmbeddedEventLoop()
        let permits = ReceivePermits(limit: 1)
        let a = try connection(permits, loop: loop), b = try connection(permits, loop: loop), c = try connection(permits, loop: loop)
        let (ua, _) = try update(round: 1, seed: 1)
        let (uc, tc) = try update(round: 1, seed: 3)
        try a.writeInbound(ua[0])                    // a holds the permit mid-payload
        try b.writeInbound(ua[0])                    // b waits first
        for e in uc { try c.writeInbound(e) }        // c waits second
        _ = try? b.finish()                          // b leaves while waiting
        _ = try? a.finish()                          // a dies mid-payload: the permit must not be lost
        loop.run()
        try withExtendedLifetime(try received(c)) { fromC in
            XCTAssertEqual(fromC.count, 1, "c never got the permit")
            XCTAssertEqual(try fromC.first?.payload?.wireTensors(), tc)
        }
        XCTAssertEqual(permits.free, 1)
        _ = try c.finish()
    }

    func testAWaitingConnectionIsNotTimedOutAsIdle() throws {
        let loop = EmbeddedEventLoop()
        let permits = ReceivePermits(limit: 1)
        let a = try connection(permits, loop: loop), b = try connection(permits, loop: loop)
        let (ua, _) = try update(round: 1, seed: 1)
        try a.writeInbound(ua[0])
        try b.writeInbound(ua[0])
        var events: [Any] = []
        final class Recorder: ChannelInboundHandler {
            typealias InboundIn = Envelope
            let record: (Any) -> Void
            init(_ record: @escaping (Any) -> Void) { self.record = record }
            func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) { record(event) }
        }
        try b.pipeline.syncOperations.addHandler(Recorder { events.append($0) })
        b.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        XCTAssertTrue(events.isEmpty, "a connection paused for a permit was reported idle")
        // Not waiting (a's side), the same event goes through.
        try a.pipeline.syncOperations.addHandler(Recorder { events.append($0) })
        a.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        XCTAssertEqual(events.count, 1)
        _ = try? a.finish(); _ = try? b.finish()
    }

    /// The time a payload's first chunk gives it once it holds a permit.
    private func limit(_ permits: ReceivePermits, _ envelopes: [Envelope]) -> TimeAmount {
        guard case .chunk(let first)? = envelopes.first?.body else { XCTFail("not chunked"); return .zero }
        return permits.timeLimit(forBytes: first.totalBytes)
    }

    func testAPayloadThatTricklesLosesItsPermitToTheNextInLine() throws {
        let loop = EmbeddedEventLoop()
        let permits = ReceivePermits(limit: 1, minimumRate: 1000, grace: .seconds(1))
        let a = try connection(permits, loop: loop), b = try connection(permits, loop: loop)
        let (ua, _) = try update(round: 1, seed: 1)
        let (ub, tb) = try update(round: 1, seed: 2)
        let allowed = limit(permits, ua)
        let seconds = Double(allowed.nanoseconds) / 1e9
        XCTAssertEqual(seconds, 1 + 12, accuracy: 0.2, "about 12 KB at 1 KB/s, plus 1 s")

        try a.writeInbound(ua[0])
        for e in ub { try b.writeInbound(e) }       // b waits, however long a takes...
        loop.advanceTime(by: allowed - .milliseconds(10))
        try a.writeInbound(ua[1])                   // ...while a keeps sending, but too slowly
        XCTAssertNoThrow(try a.throwIfErrorCaught())
        XCTAssertEqual(try received(b), [])

        loop.advanceTime(by: .milliseconds(20))     // a's time is up
        XCTAssertThrowsError(try a.throwIfErrorCaught()) { error in
            guard case .transferTooSlow(let id, let got, let total, let seconds)? = error as? WireError else {
                return XCTFail("expected transferTooSlow, got \(error)")
            }
            XCTAssertEqual(id, 1)
            XCTAssertGreaterThan(got, 0)
            XCTAssertLessThan(UInt64(got), total)
            XCTAssertEqual(seconds, Double(allowed.nanoseconds) / 1e9, accuracy: 1e-9)
        }
        // The permit went to b, whose payload arrives whole; what a sends now is ignored.
        loop.run()
        try withExtendedLifetime(try received(b)) { fromB in
            XCTAssertEqual(fromB.count, 1)
            XCTAssertEqual(try fromB.first?.payload?.wireTensors(), tb)
        }
        for e in ua.dropFirst(2) { try a.writeInbound(e) }
        XCTAssertEqual(try received(a), [])
        XCTAssertEqual(permits.free, 1, "a permit was lost")
        _ = try? a.finish(); _ = try? b.finish()
    }

    func testTheClockStartsWithThePermitAndStopsWhenThePayloadIsComplete() throws {
        let loop = EmbeddedEventLoop()
        let permits = ReceivePermits(limit: 1, minimumRate: 1000, grace: .seconds(1))
        let a = try connection(permits, loop: loop), b = try connection(permits, loop: loop)
        let (ua, ta) = try update(round: 1, seed: 1)
        let (ub, tb) = try update(round: 1, seed: 2)
        let allowed = limit(permits, ua)

        try a.writeInbound(ua[0])
        for e in ub { try b.writeInbound(e) }
        loop.advanceTime(by: allowed - .milliseconds(10))   // b has waited almost a's whole limit
        for e in ua.dropFirst() { try a.writeInbound(e) }    // a completes in time
        try withExtendedLifetime(try received(a)) { fromA in
            XCTAssertEqual(try fromA.first?.payload?.wireTensors(), ta)
            loop.advanceTime(by: allowed * 3)                // a's payload is being used: no clock runs for it
            XCTAssertNoThrow(try a.throwIfErrorCaught())
        }
        // b got the permit just now: its whole time starts here, not when it began to wait.
        loop.run()
        try withExtendedLifetime(try received(b)) { fromB in
            XCTAssertEqual(try fromB.first?.payload?.wireTensors(), tb)
        }
        loop.advanceTime(by: allowed * 3)
        XCTAssertNoThrow(try a.throwIfErrorCaught())
        XCTAssertNoThrow(try b.throwIfErrorCaught())
        XCTAssertEqual(permits.free, 1)
        _ = try a.finish(); _ = try b.finish()
    }
}
