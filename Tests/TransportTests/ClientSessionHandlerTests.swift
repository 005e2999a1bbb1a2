import Logging
import NIOCore
import NIOEmbedded
import XCTest
@testable import Transport
@testable import Wire

/// The client's session rules on `EmbeddedChannel`.
final class ClientSessionHandlerTests: XCTestCase {
    private func makeChannel() throws -> (EmbeddedChannel, EventLoopFuture<PeerConnection>) {
        let channel = EmbeddedChannel()
        let promise = channel.eventLoop.makePromise(of: PeerConnection.self)
        let hello = Fedkit_V1_Hello.with { $0.clientName = "alice"; $0.protocolVersion = 1; $0.capabilities = ["chunked-payload"] }
        try channel.pipeline.syncOperations.addHandler(ClientSessionHandler(
            hello: hello, logger: Logger(label: "test") { _ in SwiftLogNoOpLogHandler() }, readTimeout: .seconds(30), established: promise))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        return (channel, promise.futureResult)
    }

    func testHelloIsSentOnceTheServerIsIdentifiedAndWelcomeEstablishes() throws {
        let (channel, established) = try makeChannel()
        XCTAssertNil(try channel.readOutbound(as: Envelope.self), "nothing may be sent before the TLS handshake")
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "localhost"))
        guard case .hello(let hello)? = try channel.readOutbound(as: Envelope.self)?.body else { return XCTFail("no Hello") }
        XCTAssertEqual(hello.clientName, "alice")
        try channel.writeInbound(Envelope(.welcome(.with { $0.protocolVersion = 1 })))
        let connection = try established.wait()
        XCTAssertEqual(connection.peerName, "localhost")
        XCTAssertEqual(connection.welcome.protocolVersion, 1)
    }

    func testRejectFailsTheConnectionWithTheServersReason() throws {
        let (channel, established) = try makeChannel()
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "localhost"))
        try channel.writeInbound(Envelope(.reject(.with { $0.reason = "full"; $0.supportedVersions = [1] })))
        XCTAssertThrowsError(try established.wait()) { error in
            XCTAssertEqual(error as? TransportError, .rejected(reason: "full", supportedVersions: [1]))
        }
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
    }

    func testWelcomeForAnotherVersionIsRefused() throws {
        let (channel, established) = try makeChannel()
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "localhost"))
        _ = try channel.readOutbound(as: Envelope.self)
        try channel.writeInbound(Envelope(.welcome(.with { $0.protocolVersion = 7 })))
        XCTAssertThrowsError(try established.wait()) { error in
            XCTAssertEqual(error as? TransportError, .unsupportedVersion(7, supported: [1]))
        }
        guard case .error(let sent)? = try channel.readOutbound(as: Envelope.self)?.body else { return XCTFail("no Error sent") }
        XCTAssertEqual(sent.message, "protocol version 7 is not supported; supported versions: 1")
    }

    func testServerMayNotSendClientMessages() async throws {
        let (channel, established) = try makeChannel()
        channel.pipeline.fireUserInboundEventTriggered(PeerIdentified(name: "localhost"))
        try channel.writeInbound(Envelope(.welcome(.with { $0.protocolVersion = 1 })))
        let connection = try await established.get()
        try channel.writeInbound(Envelope(.fitResult(.with { $0.round = 1 })))
        channel.embeddedEventLoop.run()
        XCTAssertFalse(channel.isActive)
        do {
            for try await envelope in connection.inbound { XCTFail("unexpected \(envelope.kind)") }
            XCTFail("the stream must end with the reason")
        } catch let error as TransportError {
            XCTAssertEqual(error, .outOfOrder(kind: "fit_result", state: "in session with server \"localhost\""))
        }
    }
}
