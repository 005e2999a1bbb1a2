import Foundation
import NN
import Transport
import Wire
import XCTest
@testable import Federated

/// Updates folded as they arrive (the streamed order): whatever stops one half-way — a bad
/// checksum at its end, its client going away, the round's deadline — takes out exactly what
/// it had added, and the round goes on with the others.
final class StreamedUpdateTests: XCTestCase {
    /// How the crafted client treats its update's envelopes (carrier first, then the chunks).
    enum Mischief: Sendable {
        /// The carrier announces a checksum of other bytes.
        case wrongChecksum
        /// Half of the chunks, then the connection is closed.
        case disconnectHalfway
        /// Half of the chunks, then the rest after `delay` (past the round's deadline).
        case stallHalfway(delay: Duration)
    }

    struct Outcome {
        var metrics: [RoundMetrics]
        var global: [String: Foundation.Data]
        var log: [String]
        var status: FederationStatus
        /// Errors the server sent the crafted client.
        var told: [String]
    }

    /// One round with the honest "mnist-0" and, with `mischief`, "evil-0" misbehaving with an
    /// honest-looking streamed update.
    func run(_ mischief: Mischief?, roundTimeout: Double = 20) async throws -> Outcome {
        var config = InProcess.configuration(minFit: 1, minClients: mischief == nil ? 1 : 2)
        config.roundTimeout = roundTimeout
        let federation = try await InProcess.start(config)
        var hello = InProcess.hello("evil-0", declaredExamples: 40, domain: "svhn")
        hello.capabilities.append(WireProtocol.streamedPayloadCapability)
        let told = LogRecorder()
        var crafted: Task<Void, Never>?
        if let mischief {
            let connection = try await InProcess.connect("evil-0", port: federation.port, hello: hello)
            XCTAssertTrue(connection.welcome.capabilities.contains(WireProtocol.streamedPayloadCapability), "the server did not agree to streamed updates")
            crafted = Task { [mischief, connection, told] in await misbehave(mischief, on: connection, told: told) }
        }
        let metrics = try await federation.coordinator.run(connections: federation.server.connections)
        let global = InProcess.bytes(await federation.coordinator.globalState())
        await federation.close()
        crafted?.cancel()
        _ = await crafted?.value
        return Outcome(metrics: metrics, global: global, log: federation.recorder.all, status: federation.coordinator.status.snapshot(), told: told.all)
    }


    func checkTakenBack(_ outcome: Outcome, reference: Outcome, because reason: String, file: StaticString = #filePath, line: UInt = #line) {
        let log = outcome.log.joined(separator: "\n")
        XCTAssertEqual(outcome.metrics[0].fit.map(\.client), ["mnist-0"], log, file: file, line: line)
        XCTAssertEqual(outcome.global, reference.global, "the global model differs from the run without evil-0", file: file, line: line)
        XCTAssertEqual(outcome.status.updatesTakenBack, 1, log, file: file, line: line)
        XCTAssertEqual(outcome.status.updatesStreamed, 1, "the honest update was not streamed", file: file, line: line)
        XCTAssertTrue(outcome.log.contains { $0.contains("evil-0") && $0.contains(reason) }, "no \"\(reason)\" in:\n\(log)", file: file, line: line)
    }

    func testAStreamedUpdateFailingItsChecksumAtTheLastChunkIsTakenBack() async throws {
        let reference = try await run(nil)
        XCTAssertEqual(reference.status.updatesStreamed, 1)
        let outcome = try await run(.wrongChecksum)
        checkTakenBack(outcome, reference: reference, because: "failed its SHA-256 check")
        XCTAssertTrue(outcome.metrics[0].refused.contains { $0.hasPrefix("evil-0: ") && $0.contains("SHA-256") }, "\(outcome.metrics[0].refused)")
    }

    func testAClientThatGoesAwayHalfwayThroughItsUpdateIsTakenBack() async throws {
        let reference = try await run(nil)
        let outcome = try await run(.disconnectHalfway)
        checkTakenBack(outcome, reference: reference, because: "taken back after")
        XCTAssertEqual(outcome.metrics[0].dropped, ["evil-0"])
    }

    /// The round closes at its deadline with half an update in: it is taken out, the round
    /// averages the honest update, and the rest of the late update is dropped unread, no offence.
    func testAnUpdateHalfArrivedAtTheDeadlineIsTakenBackAndItsRestIgnored() async throws {
        let reference = try await run(nil, roundTimeout: 3)
        let outcome = try await run(.stallHalfway(delay: .seconds(4)), roundTimeout: 3)
        checkTakenBack(outcome, reference: reference, because: "at the deadline; taken back")
        XCTAssertEqual(outcome.metrics[0].dropped, ["evil-0"])
        XCTAssertTrue(outcome.told.isEmpty, "the late chunks were treated as an offence: \(outcome.told)")
    }
}

/// Answers a FitRequest with an honest-looking streamed update, spoilt as `mischief` says.
func misbehave(_ mischief: StreamedUpdateTests.Mischief, on connection: PeerConnection, told: LogRecorder) async {
    do {
        for try await envelope in connection.inbound {
            switch envelope.body {
            case .fitRequest(let request):
                var chunker = PayloadChunker(chunkSize: 512, inlineLimit: 0)
                chunker.streamed = true
                var envelopes = try chunker.split(Envelope(.fitResult(HostileInputTests.result(request, try request.parameters.wireTensors()))))
                XCTAssertGreaterThan(envelopes.count, 4, "the update is not streamed in several chunks")
                let half = envelopes.count / 2
                switch mischief {
                case .wrongChecksum:
                    guard case .fitResult(var r) = envelopes[0].body, case .chunked(var reference)? = r.parameters.content else { return }
                    reference.sha256 = Data(repeating: 7, count: 32)
                    r.parameters.content = .chunked(reference)
                    envelopes[0] = Envelope(.fitResult(r))
                    for e in envelopes { try await connection.send(e) }
                case .disconnectHalfway:
                    for e in envelopes[..<half] { try await connection.send(e) }
                    try await Task.sleep(for: .milliseconds(200))
                    await connection.close()
                    return
                case .stallHalfway(let delay):
                    for e in envelopes[..<half] { try await connection.send(e) }
                    try await Task.sleep(for: delay)
                    for e in envelopes[half...] { try await connection.send(e) }
                }
            case .evaluateRequest(let request):
                try await connection.send(Envelope(.evaluateResult(.with { $0.round = request.round; $0.accuracy = 0.5; $0.loss = 1; $0.numExamples = 20 })))
            case .error(let e):
                told.append(e.message)
            default:
                continue
            }
        }
    } catch {}
}
