import Data
import Foundation
import Logging
import NIOCore
import NN
import Tensor
import Transport
import Wire
import XCTest
@testable import Federated

/// Credentials for a test federation, made once with cluster/certs.sh.
final class FederationPKI: @unchecked Sendable {
    static let names = ["mnist-0", "svhn-0", "usps-0", "silent-0"]
    static let shared: Result<FederationPKI, Error> = Result { try FederationPKI() }
    let directory: URL

    private init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-fed-pki-\(getpid())")
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [root.appendingPathComponent("cluster/certs.sh").path, directory.path] + Self.names
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run(); p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw FederatedError.invalidConfiguration("cluster/certs.sh failed (\(p.terminationStatus)); is openssl installed?") }
    }

    func credentials(_ name: String) throws -> Credentials {
        let d = directory.path
        return try Credentials.load(certificateFile: "\(d)/\(name).crt", keyFile: "\(d)/\(name).key", caFile: "\(d)/ca.crt")
    }
}

/// Everything that crossed the wire in a test federation, per client, and the clients'
/// connections (closed by the test when the coordinator fails and says no Goodbye).
actor WireLog {
    var sent: [String: [Envelope]] = [:]       // server → client
    var received: [String: [Envelope]] = [:]   // client → server
    var connections: [PeerConnection] = []
    func opened(_ c: PeerConnection) { connections.append(c) }
    func closeAll() async { for c in connections { await c.close() } }
    func record(_ e: Envelope, to client: String) { sent[client, default: []].append(e) }
    func record(_ e: Envelope, from client: String) { received[client, default: []].append(e) }
}

final class FederationTests: XCTestCase {
    let logger: Logger = { var l = Logger(label: "test"); l.logLevel = .warning; return l }()

    func localData(_ domain: Digits5.Domain, train: Int) -> LocalData {
        let d = Digits5.makeDomains([domain], trainCount: train, testCount: 40, seed: 3)[0]
        return LocalData(train: d.train, test: d.test)
    }

    /// Serves one in-process client: answers with the real ClientRuntime and records both directions.
    /// A client in `silent` receives requests and never answers.
    /// With `streamed`, it sends its updates as FedKit's clients do when the server agrees: in
    /// the streamed order, and in chunks of 1 KiB, so that the test model's small updates are
    /// chunked (and so folded as they arrive) too.
    static func serveClient(_ runtime: ClientRuntime, port: Int, log: WireLog, logger: Logger, silent: Bool = false, streamed: Bool = true) async throws {
        let pki = try FederationPKI.shared.get()
        var hello = Fedkit_V1_Hello()
        hello.clientName = runtime.name
        hello.protocolVersion = WireProtocol.currentVersion
        hello.capabilities = WireProtocol.capabilities + (streamed ? [WireProtocol.streamedPayloadCapability] : [])
        hello.dataset = runtime.datasetSummary
        var config = ClientConfiguration.mutualTLS(credentials: try pki.credentials(runtime.name), hello: hello)
        config.serverHostname = "localhost"
        if streamed { config.chunkSize = 1024 }
        config.logger = logger
        let connection = try await FederationClient.connect(host: "127.0.0.1", port: port, configuration: config)
        await log.opened(connection)
        for try await envelope in connection.inbound {
            await log.record(envelope, to: runtime.name)
            let reply: Envelope
            switch envelope.body {
            case .fitRequest(let r): reply = try runtime.fit(r)
            case .evaluateRequest(let r): reply = try runtime.evaluate(r)
            case .goodbye: await connection.close(); return
            default: continue
            }
            if silent { continue }
            await log.record(reply, from: runtime.name)
            try await connection.send(reply)
        }
    }

    struct Run {
        var metrics: [RoundMetrics]
        var global: StateDictionary
        var runtimes: [ClientRuntime]
        var log: WireLog
        /// The precision of the coordinator's running sums (nil if it never aggregated).
        var precision: AggregationPrecision?
        /// What the coordinator reports at the end (updates streamed, taken back, …).
        var status: FederationStatus
    }

    /// Runs a federation of in-process clients over real mutual TLS on 127.0.0.1.
    /// With `streamed` (as fed-server and fed-client do) updates are folded as they arrive,
    /// otherwise received whole.
    /// `serverChunkSize` makes the server chunk even the test model's requests; `coordinator`
    /// sees the coordinator before it runs (a run that throws returns nothing).
    func federate(_ configuration: CoordinatorConfiguration, clients: [(String, Digits5.Domain, Int)], silent: Set<String> = [],
                  streamed: Bool = true, serverChunkSize: Int? = nil, coordinator seen: (Coordinator) -> Void = { _ in }) async throws -> Run {
        let pki = try FederationPKI.shared.get()
        let coordinator = try Coordinator(configuration: configuration, logger: logger)
        seen(coordinator)
        var serverConfig = ServerConfiguration.mutualTLS(credentials: try pki.credentials("server"))
        serverConfig.logger = logger
        if let serverChunkSize { serverConfig.chunkSize = serverChunkSize }
        serverConfig.capabilities += coordinator.capabilities
        let server = try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: serverConfig)
        let runtimes = try clients.map { name, domain, n in
            try ClientRuntime(name: name, learner: LocalLearner(model: try configuration.model.build(), data: localData(domain, train: n), clientName: name),
                              stateDirectory: nil, logger: logger)
        }
        let log = WireLog()
        let port = server.port
        let quietLogger = self.logger
        let tasks = runtimes.map { r in
            let quiet = silent.contains(r.name)
            return Task { try await Self.serveClient(r, port: port, log: log, logger: quietLogger, silent: quiet, streamed: streamed) }
        }
        let metrics: [RoundMetrics]
        do {
            metrics = try await coordinator.run(connections: server.connections)
        } catch {
            await server.close()
            await log.closeAll()
            for t in tasks { _ = try? await t.value }
            throw error
        }
        await server.close()
        for t in tasks { _ = try? await t.value }
        return Run(metrics: metrics, global: await coordinator.globalState(), runtimes: runtimes, log: log,
                   precision: await coordinator.aggregatorPrecision, status: coordinator.status.snapshot())
    }

    func config(_ strategy: StrategyKind, norm: Norm, rounds: Int, clients: Int, stateDirectory: String? = nil) -> CoordinatorConfiguration {
        var c = CoordinatorConfiguration(strategy: strategy, model: .digitCNN(norm: norm, widths: [4, 4, 8, 16, 8], groups: 2, seed: 5), rounds: rounds)
        c.minFitClients = clients
        c.roundTimeout = 30
        c.connectTimeout = 30
        c.training.batchSize = 8
        c.training.learningRate = 0.05
        c.stateDirectory = stateDirectory
        return c
    }

    func tensors(_ e: Envelope) throws -> [WireTensor] { try e.payload?.wireTensors() ?? [] }

    /// The size of one client's update, which sets the server's default receive bound: every
    /// tensor for FedAvg, every tensor but the BatchNorm ones for FedBN.
    func testUpdateBytesCountTheSharedTensorsOnly() throws {
        let avg = try Coordinator(configuration: config(.fedavg, norm: .batch, rounds: 1, clients: 1), logger: logger)
        let bn = try Coordinator(configuration: config(.fedbn, norm: .batch, rounds: 1, clients: 1), logger: logger)
        let model = try config(.fedavg, norm: .batch, rounds: 1, clients: 1).model.build()
        let all = model.entries.reduce(0) { $0 + $1.value.count * 4 }
        let normalization = model.entries.filter(\.isBatchNorm).reduce(0) { $0 + $1.value.count * 4 }
        XCTAssertGreaterThan(normalization, 0)
        XCTAssertEqual(avg.updateBytes, all)
        XCTAssertEqual(bn.updateBytes, all - normalization)
    }

    func testFedAvgAggregateIsTheWeightedMeanOfWhatClientsSent() async throws {
        try await checkFedAvgAggregate(precision: .float64)
    }

    func testFedAvgWithFloat32SumsIsTheWeightedMeanToFloat32Rounding() async throws {
        try await checkFedAvgAggregate(precision: .float32)
    }

    /// Updates from clients that do not stream them are received whole: the same mean.
    func testFedAvgAggregateOfUpdatesReceivedWholeIsTheWeightedMean() async throws {
        try await checkFedAvgAggregate(precision: .float64, streamed: false)
    }

    /// Float64 sums give exactly the weighted mean (rounded once), whatever order the three
    /// updates arrived in — and, streamed, however their chunks interleaved; Float32 sums agree
    /// with it to a few roundings.
    func checkFedAvgAggregate(precision: AggregationPrecision, streamed: Bool = true) async throws {
        var c = config(.fedavg, norm: .batch, rounds: 1, clients: 3)
        c.aggregationPrecision = precision
        let run = try await federate(c, clients: [("mnist-0", .mnist, 20), ("svhn-0", .svhn, 30), ("usps-0", .usps, 50)], streamed: streamed)
        XCTAssertEqual(run.status.updatesStreamed, streamed ? 3 : 0, "updates were not received as expected")
        XCTAssertEqual(run.status.updatesTakenBack, 0)
        var updates: [(weight: Double, tensors: [String: [Float]])] = []
        for (name, envelopes) in await run.log.received {
            for e in envelopes {
                guard case .fitResult(let r) = e.body else { continue }
                updates.append((Double(r.numExamples), Dictionary(uniqueKeysWithValues: try tensors(e).map { ($0.name, try $0.floats()) })))
                XCTAssertEqual(r.numExamples, name == "mnist-0" ? 20 : name == "svhn-0" ? 30 : 50)
            }
        }
        XCTAssertEqual(updates.count, 3)
        XCTAssertEqual(run.precision, precision, "the coordinator summed in another precision than configured")
        XCTAssertEqual(run.global.count, run.runtimes[0].learner.model.entries.count, "FedAvg shares every tensor")
        for (name, global) in run.global.entries {
            let expected = weightedAverage(updates.map { $0.tensors[name]! }, weights: updates.map(\.weight))
            if precision == .float64 {
                XCTAssertTrue(global.values == expected, "\(name): not the exact weighted mean")
            } else {
                for (a, b) in zip(global.values, expected) { XCTAssertEqual(a, b, accuracy: 1e-6 + 1e-6 * abs(b), name) }
            }
        }
        XCTAssertEqual(run.metrics.count, 1)
        XCTAssertEqual(run.metrics[0].evaluation.map(\.domain).sorted(), ["mnist", "svhn", "usps"])
    }

    func testFedBNNeverSendsBatchNormAndClientsKeepTheirOwn() async throws {
        let run = try await federate(config(.fedbn, norm: .batch, rounds: 2, clients: 2), clients: [("mnist-0", .mnist, 30), ("svhn-0", .svhn, 30)])
        var inspected = 0
        for envelopes in Array(await run.log.sent.values) + Array(await run.log.received.values) {
            for e in envelopes {
                for t in try tensors(e) {
                    inspected += 1
                    XCTAssertFalse(t.name.hasPrefix("bn"), "normalization tensor \(t.name) crossed the wire in a \(e.kind)")
                }
            }
        }
        XCTAssertGreaterThan(inspected, 0)
        XCTAssertFalse(run.global.names.contains { $0.hasPrefix("bn") })
        let a = run.runtimes[0].learner.model.snapshot { $0.isBatchNorm }, b = run.runtimes[1].learner.model.snapshot { $0.isBatchNorm }
        for name in a.names { XCTAssertNotEqual(a[name]!.values, b[name]!.values, "\(name) is the same on both clients") }
    }

    func testFedWonClipsAndAveragesEveryTensor() async throws {
        let run = try await federate(config(.fedwon, norm: .none, rounds: 1, clients: 2), clients: [("mnist-0", .mnist, 30), ("svhn-0", .svhn, 30)])
        let model = run.runtimes[0].learner.model
        XCTAssertFalse(model.entries.contains { $0.isNormalization })
        XCTAssertEqual(Set(run.global.names), Set(model.entries.map(\.name)))
        for r in run.runtimes { XCTAssertGreaterThan(r.lastFit?.clippedUnits ?? 0, 0, "\(r.name): AGC never clipped") }
        for case .fitRequest(let req) in (await run.log.sent["mnist-0"] ?? []).map(\.body) { XCTAssertEqual(req.config.agcLambda, 0.32) }
    }

    /// `learningRateDecay`: round r's FitRequests carry lr × decay^(r−1).
    func testTheLearningRateDecaysRoundByRound() async throws {
        var c = config(.fedavg, norm: .batch, rounds: 3, clients: 1)
        c.learningRateDecay = 0.5
        let run = try await federate(c, clients: [("mnist-0", .mnist, 30)])
        var rates: [UInt64: Float] = [:]
        for case .fitRequest(let req) in (await run.log.sent["mnist-0"] ?? []).map(\.body) { rates[req.round] = req.config.learningRate }
        XCTAssertEqual(rates, [1: 0.05, 2: 0.025, 3: 0.0125])
        c.learningRateDecay = 1.5
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("--lr-decay (1.5)"), "\($0)") }
    }

    /// Every value that cannot run is refused before anything starts, quoting it; the
    /// defaults and the edge values that can run pass.
    func testConfigurationsThatCannotRunAreRefusedByValue() throws {
        let base = config(.fedavg, norm: .batch, rounds: 2, clients: 1)
        XCTAssertNoThrow(try base.validate())
        let cases: [(String, (inout CoordinatorConfiguration) -> Void)] = [
            ("--momentum (1.0) must be in [0, 1)", { $0.training.momentum = 1 }),
            ("--momentum (-0.5)", { $0.training.momentum = -0.5 }),
            ("--weight-decay (-1.0)", { $0.training.weightDecay = -1 }),
            ("--agc-lambda (-1.0)", { $0.training.agcLambda = -1 }),
            ("--fedprox-mu (nan)", { $0.training.proximalMu = .nan }),
            ("--lr (inf) must be positive", { $0.training.learningRate = .infinity }),
            ("--max-in-flight (0) must be at least 1", { $0.maxInFlight = 0 }),
            ("--connect-timeout (0.0)", { $0.connectTimeout = 0 }),
            ("--round-timeout (inf)", { $0.roundTimeout = .infinity }),
            ("--max-examples-per-client (0)", { $0.maxExamplesPerClient = 0 }),
        ]
        for (message, change) in cases {
            var c = base
            change(&c)
            XCTAssertThrowsError(try c.validate(), message) { XCTAssertTrue("\($0)".contains(message), "\($0)") }
        }
        var edge = base
        edge.training.momentum = 0.99; edge.training.agcLambda = 0; edge.maxInFlight = 1; edge.maxExamplesPerClient = 1
        XCTAssertNoThrow(try edge.validate())
    }

    /// The line the server logs at start says what the run will do, the strategy's own
    /// training defaults included.
    func testTheSummaryStatesTheRunAsItWillBeCarriedOut() {
        var won = config(.fedwon, norm: .none, rounds: 40, clients: 4)
        won.fraction = 0.5; won.minFitClients = 3; won.roundTimeout = 300; won.stateDirectory = "/var/lib/fedkit"
        let text = won.summary
        for part in ["fedwon on digit-cnn/none, 40 rounds", "each asks 50.0% of the connected clients (at least 3)",
                     "waits up to 300.0 s and averages what arrived if at least 3 answered", "plain SGD, AGC λ 0.32",
                     "float64 sums", "checkpoints in /var/lib/fedkit"] {
            XCTAssertTrue(text.contains(part), "missing \"\(part)\" in: \(text)")
        }
        var prox = config(.fedprox, norm: .batch, rounds: 1, clients: 1)
        prox.training.momentum = 0.9; prox.stateDirectory = nil
        XCTAssertTrue(prox.summary.contains("1 round: each asks every connected client"), prox.summary)
        XCTAssertTrue(prox.summary.contains("momentum 0.9, proximal μ 0.01"), prox.summary)
        XCTAssertFalse(prox.summary.contains("AGC"), prox.summary)
        XCTAssertTrue(prox.summary.hasSuffix("no --state-dir: nothing kept on disk, no resume"), prox.summary)
    }

    func testASilentClientIsDroppedAtTheDeadline() async throws {
        var c = config(.fedavg, norm: .batch, rounds: 1, clients: 2)
        c.minFitClients = 2
        c.roundTimeout = 2
        // Three connect; the round needs two answers and gets them; the silent one is dropped at the deadline.
        let started = ContinuousClock.now
        let run = try await federate(c, clients: [("mnist-0", .mnist, 20), ("svhn-0", .svhn, 20), ("silent-0", .usps, 20)], silent: ["silent-0"])
        XCTAssertEqual(run.metrics[0].fit.map(\.client), ["mnist-0", "svhn-0"])
        XCTAssertEqual(run.metrics[0].dropped, ["silent-0"])
        XCTAssertLessThan(ContinuousClock.now - started, .seconds(20))
    }

    /// Every FitRequest carries the global model exactly — the initial one in round 1, round
    /// 1's weighted mean in round 2 — whether the server sends it from the page cache (the
    /// default) or from its own memory, here in 1 KiB chunks; both give the same run.
    func testEveryFitRequestCarriesTheGlobalModelFromThePageCacheOrMemory() async throws {
        var runs: [Run] = []
        for inPageCache in [true, false] {
            var c = config(.fedavg, norm: .batch, rounds: 2, clients: 2)
            c.modelInPageCache = inPageCache
            runs.append(try await federate(c, clients: [("mnist-0", .mnist, 20), ("svhn-0", .svhn, 30)], serverChunkSize: 1024))
        }
        let initial = try config(.fedavg, norm: .batch, rounds: 2, clients: 2).model.build()
        for run in runs {
            var requests: [UInt64: [[String: [UInt32]]]] = [:], results: [UInt64: [(Double, [String: [Float]])]] = [:]
            for (_, envelopes) in await run.log.sent {
                for e in envelopes {
                    guard case .fitRequest(let r) = e.body else { continue }
                    requests[r.round, default: []].append(Dictionary(uniqueKeysWithValues: try tensors(e).map { ($0.name, try $0.floats().map(\.bitPattern)) }))
                }
            }
            for (_, envelopes) in await run.log.received {
                for e in envelopes {
                    guard case .fitResult(let r) = e.body else { continue }
                    results[r.round, default: []].append((Double(r.numExamples), Dictionary(uniqueKeysWithValues: try tensors(e).map { ($0.name, try $0.floats()) })))
                }
            }
            XCTAssertEqual(requests[1]?.count, 2); XCTAssertEqual(requests[2]?.count, 2)
            for e in initial.entries {
                for request in requests[1] ?? [] { XCTAssertEqual(request[e.name], e.value.values.map(\.bitPattern), "round 1 sent another \(e.name)") }
                let mean = weightedAverage(results[1]!.map { $0.1[e.name]! }, weights: results[1]!.map(\.0)).map(\.bitPattern)
                for request in requests[2] ?? [] { XCTAssertEqual(request[e.name], mean, "round 2 sent another \(e.name) than round 1's mean") }
            }
        }
        XCTAssertEqual(runs[0].metrics, runs[1].metrics)
        for (name, t) in runs[0].global.entries { XCTAssertEqual(runs[1].global[name]!.values, t.values, name) }
    }

    /// A round that ends without an average (its attempts all missed the quorum) leaves the
    /// global model as it was: the values kept in the page cache meanwhile are put back.
    func testARoundWithoutAnAverageLeavesTheModelAsItWas() async throws {
        var c = config(.fedavg, norm: .batch, rounds: 1, clients: 2)
        c.roundTimeout = 1
        c.maxRoundAttempts = 1
        final class Seen: @unchecked Sendable { var coordinator: Coordinator? }
        let seen = Seen()
        do {
            _ = try await federate(c, clients: [("mnist-0", .mnist, 20), ("silent-0", .usps, 20)], silent: ["silent-0"],
                                   coordinator: { seen.coordinator = $0 })
            XCTFail("a round with one answer of two required aggregated")
        } catch FederatedError.roundAttemptsExhausted(round: 1, attempts: 1, answered: 1, required: 2) {}
        let global = try await XCTUnwrap(seen.coordinator).globalState()
        let initial = try c.model.build()
        for e in initial.entries { XCTAssertEqual(global[e.name]?.values, e.value.values, "\(e.name) is not what it was") }
    }

    func testResumedRunEqualsAnUninterruptedOneAndRunsAreReproducible() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-resume-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let clients: [(String, Digits5.Domain, Int)] = [("mnist-0", .mnist, 20), ("svhn-0", .svhn, 30)]
        let full = try await federate(config(.fedavg, norm: .batch, rounds: 4, clients: 2), clients: clients)
        let again = try await federate(config(.fedavg, norm: .batch, rounds: 4, clients: 2), clients: clients)
        XCTAssertEqual(full.metrics, again.metrics, "same seed and configuration, different metrics")
        // Stop after round 2, start again with the same state directory.
        XCTAssertNil(try Coordinator.check(config(.fedavg, norm: .batch, rounds: 2, clients: 2, stateDirectory: dir)), "no checkpoint yet")
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir), "the check wrote its state directory")
        _ = try await federate(config(.fedavg, norm: .batch, rounds: 2, clients: 2, stateDirectory: dir), clients: clients)
        // What fed-server --check says of that directory: this run resumes after round 2;
        // another strategy's run is refused, as it is at a real start.
        XCTAssertEqual(try Coordinator.check(config(.fedavg, norm: .batch, rounds: 4, clients: 2, stateDirectory: dir)), 2)
        XCTAssertThrowsError(try Coordinator.check(config(.fedbn, norm: .batch, rounds: 4, clients: 2, stateDirectory: dir))) {
            XCTAssertTrue("\($0)".contains("was written by a fedavg run of digit-cnn/batch; this run is fedbn"), "\($0)")
        }
        let resumed = try await federate(config(.fedavg, norm: .batch, rounds: 4, clients: 2, stateDirectory: dir), clients: clients)
        XCTAssertEqual(resumed.metrics.map(\.round), [1, 2, 3, 4])
        XCTAssertEqual(resumed.metrics, full.metrics)
        for (name, t) in full.global.entries { XCTAssertEqual(resumed.global[name]!.values, t.values, name) }
        let lines = try String(contentsOfFile: dir + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/final-model.fkt"))
    }
}
