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
}
