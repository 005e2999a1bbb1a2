import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import XCTest
@testable import Transport
@testable import Wire

/// Real sockets on 127.0.0.1 (ports chosen by the system): a good client, then every kind of bad
/// peer, each refused with a logged reason and a closed connection while the server goes on
/// serving a good client.
final class LoopbackIntegrationTests: XCTestCase {
    /// A running server plus the sessions it established so far.
    final class Harness: @unchecked Sendable {
        let server: FederationServer
        let log = LogCapture()
        private let lock = NSLock()
        private var sessions: [PeerConnection] = []
        private var consumer: Task<Void, Never>?

        init(readTimeout: TimeAmount = .seconds(1)) async throws {
            var configuration = ServerConfiguration.mutualTLS(credentials: try pki().credentials("server"),
                                                              allowedClients: ["alice", "bob", "raw"])
            configuration.readTimeout = readTimeout
            configuration.heartbeatInterval = .milliseconds(250)
            configuration.logger = log.logger(label: "server")
            server = try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: configuration)
            let stream = server.connections
            consumer = Task { [self] in
                for await session in stream {
                    lock.withLock { sessions.append(session) }
                }
            }
        }

        /// Waits for the server's session with `name` (the `index`-th one with that name).
        func session(named name: String, index: Int = 0) async throws -> PeerConnection {
            let deadline = NIODeadline.now() + .seconds(20)
            while NIODeadline.now() < deadline {
                let matching = lock.withLock { sessions.filter { $0.peerName == name } }
                if matching.count > index { return matching[index] }
                try await Task.sleep(nanoseconds: 5_000_000)
            }
            throw TestFailure("no session with \"\(name)\" was established")
        }

        func clientConfiguration(_ name: String, credentials: Credentials? = nil) throws -> ClientConfiguration {
            var hello = Fedkit_V1_Hello()
            hello.clientName = name
            hello.dataset = .with { $0.domain = "mnist"; $0.trainExamples = 100; $0.labelHistogram = [10, 10] }
            var configuration = ClientConfiguration.mutualTLS(credentials: try credentials ?? pki().credentials(name), hello: hello)
            configuration.serverHostname = "localhost"
            configuration.readTimeout = .seconds(5)
            configuration.heartbeatInterval = .milliseconds(250)
            configuration.logger = Logger(label: "client") { _ in SwiftLogNoOpLogHandler() }
            return configuration
        }

        func connect(_ name: String) async throws -> PeerConnection {
            try await FederationClient.connect(host: "127.0.0.1", port: server.port, configuration: clientConfiguration(name))
        }

        private var goodRounds = 0

        /// A good client ("bob") completes Hello/Welcome and one small FitRequest/FitResult exchange.
        func assertGoodClientServed(file: StaticString = #filePath, line: UInt = #line) async throws {
            let index = goodRounds
            goodRounds += 1
            let client = try await connect("bob")
            XCTAssertEqual(client.welcome.protocolVersion, 1, file: file, line: line)
            let session = try await session(named: "bob", index: index)
            XCTAssertEqual(session.hello.dataset.domain, "mnist", file: file, line: line)
            let tensors = [WireTensor(name: "w", shape: [3], floats: [1, 2, 3])]
            try await session.send(Envelope(.fitRequest(.with { $0.round = UInt64(index + 1); $0.parameters = Fedkit_V1_Payload(tensors) })))
            var clientInbound = client.inbound.makeAsyncIterator()
            guard case .fitRequest(let request)? = try await clientInbound.next()?.body else {
                return XCTFail("good client got no FitRequest", file: file, line: line)
            }
            XCTAssertEqual(try request.parameters.wireTensors(), tensors, file: file, line: line)
            try await client.send(Envelope(.fitResult(.with { $0.round = request.round; $0.numExamples = 100; $0.parameters = request.parameters })))
            var serverInbound = session.inbound.makeAsyncIterator()
            guard case .fitResult(let result)? = try await serverInbound.next()?.body else {
                return XCTFail("server got no FitResult from the good client", file: file, line: line)
            }
            XCTAssertEqual(result.numExamples, 100, file: file, line: line)
            await client.goodbye(reason: "done")
        }

        /// Asserts that the server logged that it closed a connection for a reason containing `text`.
        func assertLoggedRefusal(_ text: String, file: StaticString = #filePath, line: UInt = #line) async {
            let found = await log.waitFor(text)
            XCTAssertTrue(found, "server did not log a refusal containing \"\(text)\"; log:\n\(log.lines.joined(separator: "\n"))", file: file, line: line)
        }

        func shutdown() async {
            await server.close()
            consumer?.cancel()
        }
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    private var harness: Harness!

    override func setUp() async throws {
        harness = try await Harness()
    }

    override func tearDown() async throws {
        await harness.shutdown()
        harness = nil
    }

    /// 60 MB of pseudo-random bytes as one float32 tensor of 15 M elements.
    private func sixtyMegabytes(seed: UInt64) -> WireTensor {
        let count = 15_000_000
        var data = Data(count: count * 4)
        data.withUnsafeMutableBytes { raw in
            let words = raw.bindMemory(to: UInt64.self)
            var x = seed | 1
            for i in words.indices {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17
                words[i] = x
            }
        }
        return try! WireTensor(name: "model.weight", shape: [15_000, 1_000], dtype: .float32, bytes: data)
    }

    // MARK: The good path

    func testGoodClientCompletesHelloWelcomeAndExchangesSixtyMegabytesIntact() async throws {
        let client = try await harness.connect("alice")
        let session = try await harness.session(named: "alice")
        XCTAssertEqual(session.peerName, "alice")
        XCTAssertEqual(session.hello.clientName, "alice")
        XCTAssertEqual(client.peerName, "localhost")

        let down = sixtyMegabytes(seed: 0x5EED)
        try await session.send(Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload([down]) })))
        var clientInbound = client.inbound.makeAsyncIterator()
        guard case .fitRequest(let request)? = try await clientInbound.next()?.body else { return XCTFail("no FitRequest") }
        let received = try request.parameters.wireTensors()
        XCTAssertEqual(received.count, 1)
        XCTAssertEqual(received.first?.shape, [15_000, 1_000])
        XCTAssertTrue(received.first?.bytes == down.bytes, "60 MB model changed on the way to the client")

        let up = sixtyMegabytes(seed: 0xC0FFEE)
        try await client.send(Envelope(.fitResult(.with { $0.round = 1; $0.numExamples = 7; $0.parameters = Fedkit_V1_Payload([up]) })))
        var serverInbound = session.inbound.makeAsyncIterator()
        guard case .fitResult(let result)? = try await serverInbound.next()?.body else { return XCTFail("no FitResult") }
        XCTAssertEqual(result.numExamples, 7)
        XCTAssertTrue(try result.parameters.wireTensors().first?.bytes == up.bytes, "60 MB update changed on the way to the server")

        await client.goodbye(reason: "done")
        guard case .goodbye(let goodbye)? = try await serverInbound.next()?.body else { return XCTFail("no Goodbye") }
        XCTAssertEqual(goodbye.reason, "done")
        let end = try await serverInbound.next()
        XCTAssertNil(end, "session must end after Goodbye")
        try await harness.assertGoodClientServed()
    }

    /// The default bound on updates received at once keeps them within the budget: as many
    /// whole updates as fit, at least one however large the model.
    func testTheDefaultReceiveBoundFitsTheBudget() {
        XCTAssertEqual(ServerConfiguration.defaultReceiveBudget, 1 << 30)
        // The digit model's shared tensors (FedAvg: 14,219,210 Float32 values).
        XCTAssertEqual(ServerConfiguration.concurrentReceives(payloadBytes: 14_219_210 * 4), 18)
        XCTAssertEqual(ServerConfiguration.concurrentReceives(within: 100, payloadBytes: 30), 3)
        XCTAssertEqual(ServerConfiguration.concurrentReceives(within: 100, payloadBytes: 100), 1)
        XCTAssertEqual(ServerConfiguration.concurrentReceives(within: 100, payloadBytes: 101), 1, "a model larger than the budget is still received, one at a time")
        XCTAssertEqual(ServerConfiguration.concurrentReceives(within: 100, payloadBytes: 0), 100)
    }

    /// With `maximumConcurrentReceives` 1, three clients uploading at once are received one
    /// after another, every update intact, none timed out while it waited (read timeout 1 s).
    func testBoundedConcurrentReceivesDeliverEveryUploadIntact() async throws {
        var configuration = ServerConfiguration.mutualTLS(credentials: try pki().credentials("server"))
        configuration.maximumConcurrentReceives = 1
        configuration.readTimeout = .seconds(1)
        configuration.heartbeatInterval = .milliseconds(250)
        configuration.chunkSize = 1 << 20
        configuration.logger = Logger(label: "permits") { _ in SwiftLogNoOpLogHandler() }
        let server = try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: configuration)
        let names = ["alice", "bob", "raw"]
        var clients: [PeerConnection] = []
        for name in names {
            clients.append(try await FederationClient.connect(host: "127.0.0.1", port: server.port,
                                                              configuration: try harness.clientConfiguration(name)))
        }
        var sessions: [String: PeerConnection] = [:]
        var incoming = server.connections.makeAsyncIterator()
        while sessions.count < names.count, let s = await incoming.next() { sessions[s.peerName] = s }

        let updates = names.enumerated().map { i, _ in sixtyMegabytes(seed: UInt64(100 + i)) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, client) in clients.enumerated() {
                group.addTask {
                    try await client.send(Envelope(.fitResult(.with { $0.round = 1; $0.numExamples = UInt64(i + 1); $0.parameters = Fedkit_V1_Payload([updates[i]]) })))
                }
            }
            for (i, name) in names.enumerated() {
                let session = try XCTUnwrap(sessions[name])
                group.addTask {
                    var inbound = session.inbound.makeAsyncIterator()
                    guard case .fitResult(let result)? = try await inbound.next()?.body else { throw TestFailure("no FitResult from \(name)") }
                    XCTAssertEqual(result.numExamples, UInt64(i + 1))
                    XCTAssertTrue(try result.parameters.wireTensors().first?.bytes == updates[i].bytes, "\(name)'s update changed on the way")
                }
            }
            try await group.waitForAll()
        }
        for client in clients { await client.close() }
        await server.close()
    }

    /// A server that times out silent connections after 2.5 s and asks for a heartbeat every
    /// second keeps a client configured to beat every 10 s: the client beats as the Welcome asks.
    func testTheClientBeatsAsOftenAsTheServerAsks() async throws {
        var configuration = ServerConfiguration.mutualTLS(credentials: try pki().credentials("server"))
        configuration.readTimeout = .milliseconds(2500)
        configuration.heartbeatInterval = .seconds(1)
        configuration.logger = Logger(label: "beats") { _ in SwiftLogNoOpLogHandler() }
        let server = try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: configuration)
        var slow = try harness.clientConfiguration("alice")
        slow.heartbeatInterval = .seconds(10)
        let client = try await FederationClient.connect(host: "127.0.0.1", port: server.port, configuration: slow)
        XCTAssertEqual(client.welcome.heartbeatIntervalSeconds, 1)
        var sessions = server.connections.makeAsyncIterator()
        let next = await sessions.next()
        let session = try XCTUnwrap(next)

        try await Task.sleep(for: .seconds(4))  // longer than the server's read timeout
        try await client.send(Envelope(.evaluateResult(.with { $0.round = 1; $0.accuracy = 0.5 })))
        var serverInbound = session.inbound.makeAsyncIterator()
        let received = try await serverInbound.next()
        guard case .evaluateResult(let r)? = received?.body else {
            return XCTFail("the server closed the connection: the client did not beat often enough (got \(String(describing: received?.kind)))")
        }
        XCTAssertEqual(r.accuracy, 0.5)
        await client.close()
        await server.close()
    }

    func testCRC32CIsUsedOnlyWhenBothPeersAnnounceIt() async throws {
        // The harness server does not announce it: the Welcome leaves it out even if asked.
        var asking = try harness.clientConfiguration("alice")
        asking.hello.capabilities.append(WireProtocol.crc32cCapability)
        let refused = try await FederationClient.connect(host: "127.0.0.1", port: harness.server.port, configuration: asking)
        XCTAssertFalse(refused.welcome.capabilities.contains(WireProtocol.crc32cCapability))
        await refused.close()

        // A server and a client that both announce it agree on it, and payloads still arrive intact.
        var configuration = ServerConfiguration.mutualTLS(credentials: try pki().credentials("server"))
        configuration.capabilities.append(WireProtocol.crc32cCapability)
        configuration.logger = Logger(label: "crc") { _ in SwiftLogNoOpLogHandler() }
        let server = try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: configuration)
        let client = try await FederationClient.connect(host: "127.0.0.1", port: server.port, configuration: asking)
        XCTAssertTrue(client.welcome.capabilities.contains(WireProtocol.crc32cCapability))
        var sessions = server.connections.makeAsyncIterator()
        let next = await sessions.next()
        let session = try XCTUnwrap(next)
        let model = sixtyMegabytes(seed: 42)
        try await session.send(Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload([model]) })))
        var inbound = client.inbound.makeAsyncIterator()
        let received = try await inbound.next()
        XCTAssertTrue(try received?.payload?.wireTensors().first?.bytes == model.bytes)
        try await client.send(Envelope(.fitResult(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload([model]) })))
        var serverInbound = session.inbound.makeAsyncIterator()
        let result = try await serverInbound.next()
        XCTAssertTrue(try result?.payload?.wireTensors().first?.bytes == model.bytes)
        await client.close()
        await server.close()
    }

    func testHeartbeatsKeepAnIdleSessionAlivePastTheReadTimeout() async throws {
        let client = try await harness.connect("alice")
        let session = try await harness.session(named: "alice")
        try await Task.sleep(nanoseconds: 2_500_000_000)  // > 2 read timeouts of the server, idle apart from heartbeats
        try await session.send(Envelope(.evaluateRequest(.with { $0.round = 4 })))
        var inbound = client.inbound.makeAsyncIterator()
        guard case .evaluateRequest(let request)? = try await inbound.next()?.body else { return XCTFail("session did not survive") }
        XCTAssertEqual(request.round, 4)
        await client.close()
    }

    /// A peer that stops reading cannot hold a sender past its deadline: `send(_:before:)`
    /// throws at the deadline (not after the TLS shutdown or the read timeout) and the
    /// connection is closed. To a peer that reads, the same call delivers.
    func testASendGivesUpAtItsDeadlineOnAPeerThatStopsReading() async throws {
        await harness.shutdown()
        harness = try await Harness(readTimeout: .seconds(30))
        let client = try await harness.connect("alice")
        let good = try await harness.session(named: "alice")
        try await good.send(Envelope(.evaluateRequest(.with { $0.round = 1 })), before: .now + .seconds(5))
        var inbound = client.inbound.makeAsyncIterator()
        guard case .evaluateRequest? = try await inbound.next()?.body else { return XCTFail("a reading peer got nothing") }

        let peer = try await rawPeer()
        try await peer.send(Envelope(.hello(.with { $0.clientName = "raw"; $0.protocolVersion = 1 })))
        let session = try await harness.session(named: "raw")
        try await peer.stopReading()
        let tensors = [sixtyMegabytes(seed: 3)]
        let start = ContinuousClock.now
        do {
            try await session.send(Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload(tensors) })),
                                   before: start + .milliseconds(500))
            XCTFail("60 MB were taken by a peer that does not read")
        } catch let error as TransportError {
            guard case .sendDeadlineExceeded(let name, let seconds) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "raw")
            XCTAssertEqual(seconds, 0.5, accuracy: 0.2)
        }
        let waited = start.duration(to: .now)
        XCTAssertGreaterThanOrEqual(waited, .milliseconds(500))
        XCTAssertLessThan(waited, .milliseconds(1500), "the send was held past its deadline")
        // The connection is closed (within the TLS shutdown timeout: the peer answers nothing).
        let closed = Task { await session.waitUntilClosed(); return true }
        let timer = Task { try? await Task.sleep(for: .seconds(10)); closed.cancel() }
        let wasClosed = await closed.value
        timer.cancel()
        XCTAssertTrue(wasClosed)
        await peer.close()
        await client.close()
    }

    // MARK: Bad peers

    func testClientWithoutCertificateIsRefused() async throws {
        var configuration = try harness.clientConfiguration("alice")
        configuration.tls.certificateChain = []
        configuration.tls.privateKey = nil
        do {
            _ = try await FederationClient.connect(host: "127.0.0.1", port: harness.server.port, configuration: configuration)
            XCTFail("a client without certificate was accepted")
        } catch {}
        await harness.assertLoggedRefusal("TLS handshake failed: the peer presented no client certificate")
        try await harness.assertGoodClientServed()
    }

    func testCertificateFromAnotherCAIsRefused() async throws {
        let configuration = try harness.clientConfiguration("alice", credentials: pki().otherCredentials("alice"))
        do {
            _ = try await FederationClient.connect(host: "127.0.0.1", port: harness.server.port, configuration: configuration)
            XCTFail("a client of another CA was accepted")
        } catch {}
        await harness.assertLoggedRefusal("TLS handshake failed: the peer's certificate was not accepted")
        await harness.assertLoggedRefusal("client certificate CN=alice is issued by CN=Someone else's CA, not by the federation CA")
        try await harness.assertGoodClientServed()
    }

    func testExpiredCertificateIsRefused() async throws {
        let pki = try pki()
        let expired = try Credentials.load(certificateFile: pki.path("expired.crt"), keyFile: pki.path("expired.key"), caFile: pki.path("ca.crt"))
        let configuration = try harness.clientConfiguration("alice", credentials: expired)
        do {
            _ = try await FederationClient.connect(host: "127.0.0.1", port: harness.server.port, configuration: configuration)
            XCTFail("an expired certificate was accepted")
        } catch {}
        await harness.assertLoggedRefusal("TLS handshake failed: the peer's certificate was not accepted")
        await harness.assertLoggedRefusal("client certificate CN=alice expired at 2020-01-02T00:00:00Z")
        try await harness.assertGoodClientServed()
    }

    func testServerCertificateUsedAsAClientCertificateIsRefused() async throws {
        let configuration = try harness.clientConfiguration("localhost", credentials: pki().credentials("server"))
        do {
            _ = try await FederationClient.connect(host: "127.0.0.1", port: harness.server.port, configuration: configuration)
            XCTFail("a server certificate was accepted as a client's")
        } catch {}
        await harness.assertLoggedRefusal("certificate CN=localhost is not for client authentication")
        try await harness.assertGoodClientServed()
    }

    func testNameNotOnTheAllowListIsRejected() async throws {
        do {
            _ = try await harness.connect("mallory")
            XCTFail("mallory was accepted")
        } catch let error as TransportError {
            guard case .rejected(let reason, let versions) = error else { return XCTFail("got \(error)") }
            XCTAssertEqual(reason, "client \"mallory\" is not on the server's allow-list")
            XCTAssertEqual(versions, [1])
        }
        await harness.assertLoggedRefusal("client \"mallory\" is not on the server's allow-list")
        try await harness.assertGoodClientServed()
    }

    func testPlaintextToTheTLSPortIsDropped() async throws {
        let peer = try await RawPeer.connect(port: harness.server.port, credentials: nil)
        try await peer.send(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8))
        let closed = await peer.waitForClose()
        XCTAssertTrue(closed, "server kept a plaintext connection open")
        await harness.assertLoggedRefusal("TLS handshake failed: the peer sent a plaintext HTTP request")
        try await harness.assertGoodClientServed()
    }

    /// Connects a raw TLS peer with the allowed name "raw".
    private func rawPeer() async throws -> RawPeer {
        try await RawPeer.connect(port: harness.server.port, credentials: pki().credentials("raw"))
    }

    /// Sends `bytes`, then expects an `Error` with `code` and a closed connection.
    private func expectError(after bytes: [UInt8], code: Fedkit_V1_ErrorCode, logged: String,
                             file: StaticString = #filePath, line: UInt = #line) async throws {
        let peer = try await rawPeer()
        try await peer.send(bytes)
        let closed = await peer.waitForClose()
        XCTAssertTrue(closed, "server did not close the connection", file: file, line: line)
        let errors = try peer.receivedEnvelopes().compactMap { envelope -> Fedkit_V1_Error? in
            if case .error(let error) = envelope.body { return error } else { return nil }
        }
        XCTAssertEqual(errors.map(\.code), [code], file: file, line: line)
        await harness.assertLoggedRefusal(logged, file: file, line: line)
        try await harness.assertGoodClientServed(file: file, line: line)
    }

    func testOversizeFrameHeaderIsRefused() async throws {
        try await expectError(after: [0x7F, 0xFF, 0xFF, 0xFF], code: .frameTooLarge,
                              logged: "frame header announces 2147483647 bytes, more than the maximum frame size of 16777216 bytes")
    }

    func testFrameThatIsNotAnEnvelopeIsRefused() async throws {
        try await expectError(after: [0, 0, 0, 3, 0xFF, 0xFF, 0xFF], code: .malformed, logged: "frame of 3 bytes is not a valid fedkit.v1.Envelope")
    }

    func testTruncatedFrameFollowedBySilenceIsDroppedAtTheReadTimeout() async throws {
        try await expectError(after: [0, 0, 0, 100] + [UInt8](repeating: 0x0A, count: 10), code: .timeout, logged: "read timeout")
    }

    func testFitResultBeforeHelloIsRefused() async throws {
        var frame = try FrameCodec().encodeFrame(Envelope(.fitResult(.with { $0.round = 1; $0.numExamples = 5 })))
        try await expectError(after: frame.readBytes(length: frame.readableBytes)!, code: .outOfOrder,
                              logged: "fit_result is not allowed while waiting for Hello from \"raw\"")
    }

    func testUnknownProtocolVersionIsRejectedNamingTheSupportedVersions() async throws {
        var configuration = try harness.clientConfiguration("alice")
        configuration.hello.protocolVersion = 99
        do {
            _ = try await FederationClient.connect(host: "127.0.0.1", port: harness.server.port, configuration: configuration)
            XCTFail("protocol version 99 was accepted")
        } catch let error as TransportError {
            XCTAssertEqual(error, .rejected(reason: "protocol version 99 is not supported; supported versions: 1", supportedVersions: [1]))
        }
        await harness.assertLoggedRefusal("protocol version 99 is not supported")
        try await harness.assertGoodClientServed()
    }

    func testChunkedPayloadWithBadChecksumAppliesNothing() async throws {
        let peer = try await rawPeer()
        try await peer.send(Envelope(.hello(.with { $0.clientName = "raw"; $0.protocolVersion = 1 })))
        let welcome = try await peer.waitForEnvelope { $0.kind == "welcome" }
        XCTAssertNotNil(welcome, "raw peer was not welcomed")
        let session = try await harness.session(named: "raw")

        var chunker = PayloadChunker(chunkSize: 64 << 10, inlineLimit: 0)
        let tensor = WireTensor(name: "w", shape: [100_000], floats: (0..<100_000).map(Float.init))
        var envelopes = try chunker.split(Envelope(.fitResult(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload([tensor]) })))
        guard case .chunk(var chunk) = envelopes[2].body else { return XCTFail() }
        chunk.data[chunk.data.startIndex + 100] ^= 1
        envelopes[2].body = .chunk(chunk)
        for envelope in envelopes { try await peer.send(envelope) }

        let closed = await peer.waitForClose()
        XCTAssertTrue(closed)
        let codes = try peer.receivedEnvelopes().compactMap { envelope -> Fedkit_V1_ErrorCode? in
            if case .error(let error) = envelope.body { return error.code } else { return nil }
        }
        XCTAssertEqual(codes, [.checksumMismatch])
        var delivered: [Envelope] = []
        do {
            for try await envelope in session.inbound { delivered.append(envelope) }
            XCTFail("the session's stream should end with the checksum error")
        } catch let error as WireError {
            guard case .checksumMismatch = error else { return XCTFail("got \(error)") }
        }
        XCTAssertTrue(delivered.isEmpty, "nothing may be applied: got \(delivered.map(\.kind))")
        await harness.assertLoggedRefusal("failed its SHA-256 check")
        try await harness.assertGoodClientServed()
    }

    // MARK: Dialer

    func testReconnectingDialerRetriesUntilTheServerIsUp() async throws {
        // Reserve a free port, release it, and start the server there only after a few failed dials.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton).bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        let dialer = ReconnectingDialer(host: "127.0.0.1", port: port, configuration: try harness.clientConfiguration("alice"),
                                        backoff: Backoff(initial: .milliseconds(50), maximum: .milliseconds(200), multiplier: 2, jitter: 0.5),
                                        maximumAttempts: 200)
        let dialing = Task { try await dialer.connect() }
        try await Task.sleep(nanoseconds: 300_000_000)
        var configuration = ServerConfiguration.mutualTLS(credentials: try pki().credentials("server"))
        configuration.logger = Logger(label: "late") { _ in SwiftLogNoOpLogHandler() }
        let late = try await FederationServer.start(host: "127.0.0.1", port: port, configuration: configuration)
        let connection = try await dialing.value
        XCTAssertEqual(connection.welcome.protocolVersion, 1)
        await connection.close()
        await late.close()
    }

    func testReconnectingDialerDoesNotRetryARejection() async throws {
        let dialer = ReconnectingDialer(host: "127.0.0.1", port: harness.server.port, configuration: try harness.clientConfiguration("mallory"),
                                        backoff: Backoff(initial: .milliseconds(10), maximum: .milliseconds(10), multiplier: 1, jitter: 0),
                                        maximumAttempts: 5)
        do {
            _ = try await dialer.connect()
            XCTFail("mallory was accepted")
        } catch let error as TransportError {
            guard case .rejected = error else { return XCTFail("got \(error)") }
        }
        let refusals = harness.log.lines.filter { $0.contains("not on the server's allow-list") }
        XCTAssertEqual(refusals.count, 1)
    }
}
