import Logging
import NIOCore
import NIOEmbedded
import XCTest
@testable import Transport
@testable import Wire

/// The server's session rules on `EmbeddedChannel`, without sockets or TLS: the TLS layer is
/// stood in for by firing `PeerIdentified` the way `PeerIdentityHandler` does.
final class SessionHandlerTests: XCTestCase {
    private final class Box: @unchecked Sendable { var connections: [PeerConnection] = [] }

    private func makeServerChannel(allowed: Set<String>? = nil, readTimeout: TimeAmount = .seconds(30),
                                   heartbeat: TimeAmount = .seconds(10), box: Box = Box()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        let settings = ServerSessionHandler.Settings(
            allowedClients: allowed, supportedVersions: [1], capabilities: WireProtocol.capabilities,
            heartbeatInterval: heartbeat, readTimeout: readTimeout, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() })
        try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: readTimeout, writeTimeout: heartbeat))
        try channel.pipeline.syncOperations.addHandler(ServerSessionHandler(settings: settings) { box.connections.append($0) })
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return channel
    }

    private func hello(_ name: String, version: UInt32 = 1) -> Envelope {
        Envelope(.hello(.with { $0.clientName = name; $0.protocolVersion = version; $0.capabilities = ["chunked-payload"] }))
    }

    private func outbound(_ channel: EmbeddedChannel) throws -> [Envelope] {
        var out: [Envelope] = []
        while let envelope = try channel.readOutbound(as: Envelope.self) { out.append(envelope) }
        return out
    }

    func testHelloFromTheCertifiedNameIsWelcomed() throws {
        let box = Box()
        let channel = try makeServerChannel(box: box)
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "alice"))
        try channel.writeInbound(hello("alice"))
        let sent = try outbound(channel)
        XCTAssertEqual(sent.map(\.kind), ["welcome"])
        guard case .welcome(let welcome) = sent[0].body else { return XCTFail() }
        XCTAssertEqual(welcome.protocolVersion, 1)
        XCTAssertEqual(welcome.capabilities, ["chunked-payload"])
        XCTAssertEqual(box.connections.map(\.peerName), ["alice"])
        XCTAssertTrue(channel.isActive)
    }

    func testFitResultBeforeHelloIsAnOutOfOrderError() throws {
        let box = Box()
        let channel = try makeServerChannel(box: box)
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "alice"))
        try channel.writeInbound(Envelope(.fitResult(.with { $0.round = 1 })))
        let sent = try outbound(channel)
        guard case .error(let error)? = sent.first?.body else { return XCTFail("expected an Error, got \(sent.map(\.kind))") }
        XCTAssertEqual(error.code, .outOfOrder)
        XCTAssertEqual(error.message, "fit_result is not allowed while waiting for Hello from \"alice\"")
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
        XCTAssertTrue(box.connections.isEmpty)
    }

    func testUnknownProtocolVersionIsRejectedWithTheSupportedVersions() throws {
        let channel = try makeServerChannel()
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "alice"))
        try channel.writeInbound(hello("alice", version: 7))
        let sent = try outbound(channel)
        guard case .reject(let reject)? = sent.first?.body else { return XCTFail("expected a Reject, got \(sent.map(\.kind))") }
        XCTAssertEqual(reject.supportedVersions, [1])
        XCTAssertEqual(reject.reason, "protocol version 7 is not supported; supported versions: 1")
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
    }

    func testNameNotOnTheAllowListIsRejectedBeforeAnyMessage() throws {
        let channel = try makeServerChannel(allowed: ["alice"])
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "mallory"))
        let sent = try outbound(channel)
        guard case .reject(let reject)? = sent.first?.body else { return XCTFail("expected a Reject, got \(sent.map(\.kind))") }
        XCTAssertEqual(reject.reason, "client \"mallory\" is not on the server's allow-list")
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
    }

    func testHelloNamingSomeoneElseIsRejected() throws {
        let channel = try makeServerChannel()
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "alice"))
        try channel.writeInbound(hello("bob"))
        let sent = try outbound(channel)
        guard case .reject(let reject)? = sent.first?.body else { return XCTFail("expected a Reject, got \(sent.map(\.kind))") }
        XCTAssertEqual(reject.reason, "Hello names client \"bob\" but its certificate names \"alice\"")
    }

    func testClientMayNotSendServerMessages() throws {
        let channel = try makeServerChannel()
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "alice"))
        try channel.writeInbound(hello("alice"))
        _ = try outbound(channel)
        try channel.writeInbound(Envelope(.fitRequest(.with { $0.round = 1 })))
        let sent = try outbound(channel)
        guard case .error(let error)? = sent.first?.body else { return XCTFail("expected an Error, got \(sent.map(\.kind))") }
        XCTAssertEqual(error.code, .outOfOrder)
    }

    func testSilenceIsClosedAtTheReadTimeoutAndHeartbeatsFlowWhenIdle() throws {
        let channel = try makeServerChannel(readTimeout: .seconds(300), heartbeat: .seconds(200))
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "alice"))
        try channel.writeInbound(hello("alice"))
        XCTAssertEqual(try outbound(channel).map(\.kind), ["welcome"])
        // IdleStateHandler measures real time, so its events are fired here directly.
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.write)
        XCTAssertEqual(try outbound(channel).map(\.kind), ["heartbeat"])
        XCTAssertTrue(channel.isActive)
        channel.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        let sent = try outbound(channel)
        guard case .error(let error)? = sent.last?.body else { return XCTFail("expected an Error, got \(sent.map(\.kind))") }
        XCTAssertEqual(error.code, .timeout)
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
    }

    func testChecksumFailureFromBelowIsReportedAndCloses() throws {
        let channel = try makeServerChannel()
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "alice"))
        try channel.writeInbound(hello("alice"))
        _ = try outbound(channel)
        channel.pipeline.fireErrorCaught(WireError.checksumMismatch(transferID: 1, announced: "aa", computed: "bb"))
        let sent = try outbound(channel)
        guard case .error(let error)? = sent.first?.body else { return XCTFail("expected an Error, got \(sent.map(\.kind))") }
        XCTAssertEqual(error.code, .checksumMismatch)
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
    }

    func testBackoffGrowsExponentiallyWithBoundedJitter() {
        let backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(2), multiplier: 2, jitter: 0.5)
        var rng = SystemRandomNumberGenerator()
        for attempt in 0..<10 {
            let nominal = min(100_000_000 * (1 << attempt), 2_000_000_000)
            for _ in 0..<20 {
                let delay = backoff.delay(attempt: attempt, using: &rng).nanoseconds
                XCTAssertLessThanOrEqual(delay, Int64(nominal), "attempt \(attempt)")
                XCTAssertGreaterThanOrEqual(delay, Int64(nominal / 2), "attempt \(attempt)")
            }
        }
        let noJitter = Backoff(initial: .milliseconds(100), maximum: .seconds(1), multiplier: 3, jitter: 0)
        XCTAssertEqual((0..<4).map { noJitter.delay(attempt: $0).nanoseconds }, [100_000_000, 300_000_000, 900_000_000, 1_000_000_000])
    }
}
