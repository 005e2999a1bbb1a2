import Data
import Foundation
import NN
import Transport
import Wire
import XCTest
@testable import Federated

/// A client with a valid certificate that answers the coordinator with crafted messages.
final class HostileInputTests: XCTestCase {
    /// What the hostile client sends when asked to train: built from the request and an honest-looking update.
    typealias Attack = @Sendable (_ request: Fedkit_V1_FitRequest, _ update: [WireTensor]) -> [Fedkit_V1_FitResult]

    struct Outcome {
        var metrics: [RoundMetrics]
        var global: [String: Foundation.Data]
        var log: [String]
        /// Whether the coordinator closed the hostile client's connection before the run ended.
        var hostileDisconnected: Bool
    }

    /// One round with the honest "mnist-0" and, when `attack` is set, the hostile "evil-0".
    /// With `streamed`, the hostile client sends its results in the streamed order (chunked), so
    /// that the coordinator has folded part of a bad update before it finds the fault.
    func run(declared: UInt64 = 40, maxOffences: Int = 10, maxExamples: Int = 1_000_000, maxUpdateNorm: Double? = nil,
             streamed: Bool = false, attack: Attack?) async throws -> Outcome {
        var config = InProcess.configuration(minFit: 1, minClients: attack == nil ? 1 : 2)
        config.maxUpdateNorm = maxUpdateNorm
        config.roundTimeout = 4
        config.maxOffences = maxOffences
        config.maxExamplesPerClient = maxExamples
        let federation = try await InProcess.start(config)
        let (recorder, coordinator, port) = (federation.recorder, federation.coordinator, federation.port)
        let disconnected = ManagedFlag()
        var hostileTask: Task<Void, Error>?
        if let attack {
            var hello = InProcess.hello("evil-0", declaredExamples: declared, domain: "svhn")
            if streamed { hello.capabilities.append(WireProtocol.streamedPayloadCapability) }
            let connection = try await InProcess.connect("evil-0", port: port, hello: hello)
            hostileTask = Task {
                // Ending without a Goodbye means the server closed the connection.
                if await answerAsCraftedClient(on: connection, disconnected: disconnected, fit: attack) { disconnected.set() }
            }
        }
        let metrics = try await coordinator.run(connections: federation.server.connections)
        let global = InProcess.bytes(await coordinator.globalState())
        await federation.close()
        _ = try? await hostileTask?.value
        return Outcome(metrics: metrics, global: global, log: recorder.all, hostileDisconnected: disconnected.value)
    }

    static func result(_ request: Fedkit_V1_FitRequest, _ tensors: [WireTensor], examples: UInt64 = 40, round: UInt64? = nil) -> Fedkit_V1_FitResult {
        var r = Fedkit_V1_FitResult()
        r.round = round ?? request.round
        r.parameters = Fedkit_V1_Payload(tensors)
        r.numExamples = examples
        r.trainLoss = 1
        r.trainAccuracy = 0.5
        return r
    }

    /// `tensors` with the first value of tensor number `index` replaced.
    static func poison(_ tensors: [WireTensor], _ value: Float) -> [WireTensor] {
        var out = tensors
        var floats = try! out[0].floats()
        floats[floats.count / 2] = value
        out[0] = WireTensor(name: out[0].name, shape: out[0].shape, floats: floats)
        return out
    }

    func testEveryHostileUpdateIsRefusedLoggedAndLeavesTheGlobalModelUnchanged() async throws {
        try await checkHostileUpdates(streamed: false)
    }

    /// Streamed, a bad update is found only after part of it was folded: what it added is taken
    /// out again, exactly (Float64 sums), so the global model is the same to the bit.
    func testEveryHostileStreamedUpdateIsTakenBackAndLeavesTheGlobalModelUnchanged() async throws {
        try await checkHostileUpdates(streamed: true)
    }

    func checkHostileUpdates(streamed: Bool) async throws {
        let reference = try await run(attack: nil)
        XCTAssertEqual(reference.metrics[0].fit.map(\.client), ["mnist-0"])

        let cases: [(name: String, declared: UInt64, reason: String, attack: Attack)] = [
            ("NaN in the last tensor", 40, "NaN or infinite", { req, t in
                var u = t
                var floats = try! u[u.count - 1].floats()
                floats[floats.count - 1] = .nan
                u[u.count - 1] = WireTensor(name: u[u.count - 1].name, shape: u[u.count - 1].shape, floats: floats)
                return [Self.result(req, u)]
            }),
            ("wrong tensor names", 40, "unexpected tensor conv9.weight", { req, t in
                var u = t
                u[0] = WireTensor(name: "conv9.weight", shape: u[0].shape, floats: try! u[0].floats())
                return [Self.result(req, u)]
            }),
            ("a missing tensor", 40, "missing", { req, t in [Self.result(req, Array(t.dropLast()))] }),
            ("wrong shapes", 40, "has shape", { req, t in
                var u = t
                let floats = try! u[0].floats()
                u[0] = WireTensor(name: u[0].name, shape: [floats.count], floats: floats)
                return [Self.result(req, u)]
            }),
            ("NaN", 40, "NaN or infinite", { req, t in [Self.result(req, Self.poison(t, .nan))] }),
            ("infinity", 40, "NaN or infinite", { req, t in [Self.result(req, Self.poison(t, -.infinity))] }),
            ("zero examples", 40, "claims 0 training examples", { req, t in [Self.result(req, t, examples: 0)] }),
            ("a negative example count (-1 as uint64)", 40, "claims 18446744073709551615 training examples", { req, t in
                [Self.result(req, t, examples: UInt64(bitPattern: -1))]
            }),
            ("10^9 examples, 40 declared", 40, "claims 1000000000 training examples; allowed 1...40", { req, t in
                [Self.result(req, t, examples: 1_000_000_000)]
            }),
            ("10^9 examples, 10^9 declared", 1_000_000_000, "allowed 1...1000000", { req, t in
                [Self.result(req, t, examples: 1_000_000_000)]
            }),
            ("a round it was not asked for", 40, "fit result for round 7 was not requested", { req, t in
                [Self.result(req, t, round: req.round + 6)]
            }),
        ]
        var refusedCount = 0
        for c in cases {
            let outcome = try await run(declared: c.declared, streamed: streamed, attack: c.attack)
            let round = outcome.metrics[0]
            XCTAssertEqual(round.fit.map(\.client), ["mnist-0"], "\(c.name): the hostile update was averaged")
            XCTAssertEqual(outcome.global, reference.global, "\(c.name): the global model differs from the run without the hostile client")
            XCTAssertTrue(round.refused.contains { $0.hasPrefix("evil-0: ") && $0.contains(c.reason) },
                          "\(c.name): refusal not recorded with \"\(c.reason)\": \(round.refused)")
            XCTAssertTrue(outcome.log.contains { $0.contains("refused from client \"evil-0\"") && $0.contains(c.reason) },
                          "\(c.name): refusal not logged with the client's name and \"\(c.reason)\"")
            XCTAssertFalse(outcome.hostileDisconnected, "\(c.name): one offence must not disconnect")
            refusedCount += 1
        }
        print("hostile input\(streamed ? " (streamed)" : ""): \(refusedCount) kinds of hostile update tried, \(refusedCount) refused, 0 bytes of the global model changed")
    }

    func testTheSameResultTwiceIsAveragedOnce() async throws {
        let once = try await run(attack: { req, t in [Self.result(req, t, examples: 40)] })
        let twice = try await run(attack: { req, t in [Self.result(req, t, examples: 40), Self.result(req, t, examples: 40)] })
        XCTAssertEqual(twice.metrics[0].fit.map(\.client), ["evil-0", "mnist-0"])
        XCTAssertTrue(twice.metrics[0].refused.contains { $0.hasPrefix("evil-0: ") && $0.contains("was not requested") }, "\(twice.metrics[0].refused)")
        XCTAssertTrue(twice.log.contains { $0.contains("refused from client \"evil-0\"") })
        // Same updates with the same weights: the duplicate added nothing.
        for (name, bytes) in once.global {
            let a = bytes.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            let b = twice.global[name]!.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6 + 1e-6 * abs(x), name) }
        }
    }

    func testRepeatedOffencesDisconnectTheClient() async throws {
        let outcome = try await run(maxOffences: 3, attack: { req, t in
            [Self.result(req, Self.poison(t, .nan)), Self.result(req, t, round: req.round + 1), Self.result(req, t, examples: 0)]
        })
        XCTAssertTrue(outcome.hostileDisconnected, "the client was not disconnected after three refused messages")
        XCTAssertTrue(outcome.log.contains { $0.contains("disconnecting client \"evil-0\" after 3 refused messages") }, outcome.log.joined(separator: "\n"))
        XCTAssertEqual(outcome.metrics[0].fit.map(\.client), ["mnist-0"])
        XCTAssertEqual(outcome.metrics[0].refused.filter { $0.hasPrefix("evil-0: ") }.count, 3)
    }

    /// A client that answers every request after its round closed (a slow or interrupted
    /// network) has each late answer refused and averaged nowhere, but is not disconnected
    /// for it: late answers to requests it was sent are no offence, however many.
    func testLateAnswersAreRefusedButAreNoOffence() async throws {
        var config = InProcess.configuration(rounds: 4, minFit: 1, minClients: 2)
        config.roundTimeout = 1
        config.maxOffences = 2
        let federation = try await InProcess.start(config)
        let (recorder, coordinator, port) = (federation.recorder, federation.coordinator, federation.port)
        let connection = try await InProcess.connect("slow-0", port: port, hello: InProcess.hello("slow-0", declaredExamples: 40, domain: "svhn"))
        let disconnected = ManagedFlag()
        let delay = Duration.milliseconds(1300)
        let slowTask = Task { [connection, disconnected] in
            _ = await answerAsCraftedClient(on: connection, disconnected: disconnected, delay: delay) { [HostileInputTests.result($0, $1)] }
        }
        let metrics = try await coordinator.run(connections: federation.server.connections)
        await federation.close()
        _ = try? await slowTask.value

        XCTAssertEqual(metrics.map(\.round), [1, 2, 3, 4])
        for m in metrics { XCTAssertEqual(m.fit.map(\.client), ["mnist-0"], "round \(m.round) averaged a late update") }
        let late = recorder.all.filter { $0.contains("refused from client \"slow-0\"") && $0.contains("arrived late") }
        XCTAssertGreaterThan(late.count, config.maxOffences, "fewer late answers than offences allowed: the test proves nothing\n\(recorder.all.joined(separator: "\n"))")
        XCTAssertFalse(recorder.all.contains { $0.contains("disconnecting client \"slow-0\"") }, recorder.all.joined(separator: "\n"))
        XCTAssertFalse(disconnected.value, "the late client was told it is disconnected for refused messages")
    }
}

/// A crafted client's loop: answers each training request with what `fit` builds from it,
/// each evaluation with a plausible result, each after `delay`; sets `disconnected` when
/// the server says it disconnects the client for refused messages. Returns whether the
/// session ended without a Goodbye (closed by the server, or the run ended mid-answer).
extension HostileInputTests {
    /// A well-formed update pushed far from the global model moves it by half its push
    /// without a bound (two clients, equal examples), and by at most its share of the bound
    /// with `maxUpdateNorm`: the coordinator counts it scaled to the bound and records that.
    func testNormClippingBoundsHowFarAScaledUpdateMovesTheModel() async throws {
        let push: Attack = { req, t in
            var u = t
            u[0] = WireTensor(name: u[0].name, shape: u[0].shape, floats: try! u[0].floats().map { $0 + 1000 })
            return [Self.result(req, u)]
        }
        let honestOnly = try await run(attack: nil)
        let unbounded = try await run(attack: push)
        let bounded = try await run(maxUpdateNorm: 1, attack: push)
        /// The largest change of any value from the model of the run without the pushing client.
        func shift(_ o: Outcome) -> Float {
            let a = o.global, b = honestOnly.global
            var worst: Float = 0
            for key in b.keys {
                let x = a[key]!.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                let y = b[key]!.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
                for (p, q) in zip(x, y) { worst = max(worst, abs(p - q)) }
            }
            return worst
        }
        XCTAssertEqual(Set(bounded.metrics[0].fit.map(\.client)), ["mnist-0", "evil-0"], "the pushed update was refused, not clipped")
        XCTAssertGreaterThan(shift(unbounded), 100, "without a bound the push should have moved the model")
        XCTAssertLessThan(shift(bounded), 0.5, "the bound did not hold the push back")
        let evil = try XCTUnwrap(bounded.metrics[0].fit.first { $0.client == "evil-0" })
        XCTAssertGreaterThan(try XCTUnwrap(evil.clippedFromDistance), 1000)
        XCTAssertTrue(bounded.log.contains { $0.contains("evil-0") && $0.contains("counted at the bound") }, bounded.log.joined(separator: "\n"))
    }
    /// With one receive slot, a client that starts its update and then stalls holds the slot
    /// only for the time its size allows: it is disconnected, and the honest client's update
    /// gets in long before the round's deadline.
    func testAClientThatStallsItsUploadLosesItsReceiveSlotAndTheRoundGoesOn() async throws {
        var config = InProcess.configuration(minFit: 1, minClients: 2)
        config.roundTimeout = 30
        let federation = try await InProcess.start(config) { server in
            server.maximumConcurrentReceives = 1
            server.minimumReceiveRate = 1_000_000_000
            server.receiveGrace = .milliseconds(500)
        }
        let connection = try await InProcess.connect("slow-0", port: federation.port, hello: InProcess.hello("slow-0", declaredExamples: 40, domain: "svhn"))
        let told = LogRecorder()
        let staller = Task { [connection] in await stallUploads(on: connection, told: told) }
        let start = ContinuousClock.now
        let metrics = try await federation.coordinator.run(connections: federation.server.connections)
        let elapsed = (ContinuousClock.now - start)
        await federation.close()
        staller.cancel()
        await connection.close()

        XCTAssertEqual(metrics.first?.fit.map(\.client), ["mnist-0"], federation.recorder.all.joined(separator: "\n"))
        XCTAssertLessThan(elapsed, .seconds(15), "the round waited for the stalled upload")
        XCTAssertTrue(told.all.contains { $0.contains("was not complete after") }, "slow-0 was told: \(told.all)")
    }
}

/// Answers every FitRequest with the first chunk of an honest-looking update, then nothing;
/// records the errors the server sends.
func stallUploads(on connection: PeerConnection, told: LogRecorder) async {
    do {
        for try await envelope in connection.inbound {
            switch envelope.body {
            case .fitRequest(let request):
                var chunker = PayloadChunker(chunkSize: 4096, inlineLimit: 0)
                let result = HostileInputTests.result(request, try request.parameters.wireTensors())
                let chunks = try chunker.split(Envelope(.fitResult(result)))
                try await connection.send(chunks[0])
            case .error(let e):
                told.append(e.message)
            default:
                continue
            }
        }
    } catch {}
}

func answerAsCraftedClient(on connection: PeerConnection, disconnected: ManagedFlag, delay: Duration = .zero,
                           fit: HostileInputTests.Attack) async -> Bool {
    do {
        for try await envelope in connection.inbound {
            switch envelope.body {
            case .fitRequest(let request):
                let update = try request.parameters.wireTensors()
                if delay > .zero { try await Task.sleep(for: delay) }
                for r in fit(request, update) { try await connection.send(Envelope(.fitResult(r))) }
            case .evaluateRequest(let request):
                if delay > .zero { try await Task.sleep(for: delay) }
                var e = Fedkit_V1_EvaluateResult()
                e.round = request.round; e.accuracy = 0.5; e.loss = 1; e.numExamples = 20
                try await connection.send(Envelope(.evaluateResult(e)))
            case .goodbye:
                await connection.close()
                return false
            case .error(let e) where e.message.contains("refused messages"):
                disconnected.set()
            default:
                continue
            }
        }
    } catch {}
    return true
}

/// A flag set from one task and read from another.
final class ManagedFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var flag = false
    func set() { lock.lock(); flag = true; lock.unlock() }
    var value: Bool { lock.lock(); defer { lock.unlock() }; return flag }
}
