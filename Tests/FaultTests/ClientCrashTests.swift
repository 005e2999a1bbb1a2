import Foundation
import Data
import Logging
import NN
import Wire
import XCTest
@testable import Federated

/// A client daemon killed with SIGKILL in the middle of a run, then restarted with the same
/// state directory.
final class ClientCrashTests: XCTestCase {
    func testKilledClientDoesNotHoldTheRoundAndRejoinsWithItsBatchNormIntact() throws {
        let names = ["mnist-0", "svhn-0", "usps-0"]
        let fed = try DaemonFederation(name: "client-crash", clients: names)
        addTeardownBlock { [unowned self] in fed.stopAll(); fed.finish(keepingLogs: (self.testRun?.totalFailureCount ?? 0) > 0) }
        let serverDir = fed.root + "/server"
        let rounds = 30
        let server = try fed.startServer(stateDir: serverDir, rounds: rounds, minFit: 2, minClients: 3, roundTimeout: 20)
        let port = try fed.port(of: server)
        // The victim trains on more data than the others, so that its local training is what is killed.
        let victimName = "mnist-0"
        var victim = try fed.startClient(victimName, port: port, trainCount: 1500)
        for n in names where n != victimName { _ = try fed.startClient(n, port: port) }

        // Let it train two rounds, then kill it while round 3 (or later) is in progress.
        try fed.waitFor("the victim to train round 2", timeout: 90, logs: [server, victim]) {
            try readClientState(fed.clientStateDir(victimName)).flatMap { $0.metadata.round >= 2 ? true : nil }
        }
        usleep(100_000)
        let killedAt = fed.metrics(serverDir).count
        victim.killNow()
        XCTAssertEqual(victim.process.terminationReason, .uncaughtSignal)

        // What it had saved is a whole file (never half-written), of a round it finished.
        let saved = try XCTUnwrap(try readClientState(fed.clientStateDir(victimName)), "the killed client left no state file")
        XCTAssertGreaterThanOrEqual(saved.metadata.round, 2)
        let savedBatchNorm = saved.tensors.entries.filter { $0.name.hasPrefix("bn") }
        XCTAssertFalse(savedBatchNorm.isEmpty, "a FedBN client's state holds its BatchNorm tensors")

        // The federation goes on without it: the next round closes with the other two.
        let after = try fed.waitFor("a round to close without the killed client", timeout: 60, logs: [server]) {
            fed.metrics(serverDir).dropFirst(killedAt).first { !$0.fit.map(\.client).contains(victimName) }
        }
        XCTAssertEqual(after.fit.map(\.client), ["svhn-0", "usps-0"])
        if after.selected.contains(victimName) {
            XCTAssertEqual(after.dropped, [victimName], "a client that died during the round is reported as dropped")
        }

        // Restarted with the same state directory, it restores exactly what it saved and rejoins.
        victim = try fed.startClient(victimName, port: port, trainCount: 1500)
        let restored = try fed.waitForLine(victim, containing: "restored local state", timeout: 30)
        XCTAssertTrue(restored.contains("round \(saved.metadata.round) "), restored)
        XCTAssertTrue(restored.contains(ClientRuntime.digest(saved.tensors)),
                      "the restarted client's tensors differ from its saved state: \(restored)")
        let rejoinedAt = fed.metrics(serverDir).count
        let rejoined = try fed.waitFor("the restarted client to train in a round again", timeout: 90, logs: [server, victim]) {
            fed.metrics(serverDir).dropFirst(rejoinedAt).first { $0.fit.map(\.client).contains(victimName) }
        }
        XCTAssertEqual(rejoined.fit.count, 3)

        // The run completes; every round is recorded once; everyone leaves cleanly.
        XCTAssertEqual(try server.waitForExit(timeout: 120), 0, server.tail())
        XCTAssertEqual(fed.metrics(serverDir).map(\.round), (1...UInt64(rounds)).map { $0 })
        XCTAssertEqual(try victim.waitForExit(timeout: 20), 0, victim.tail())
        print("client crash: \(victimName) SIGKILLed after round \(killedAt) (round \(after.round) closed with \(after.fit.map(\.client)), dropped \(after.dropped)); restarted with its round-\(saved.metadata.round) state bit for bit; trained again in round \(rejoined.round); \(rounds)/\(rounds) rounds completed")
    }

    /// The in-process half of the same guarantee: a client runtime built on a saved state
    /// directory holds every saved BatchNorm value, bit for bit.
    func testClientRuntimeRestoresEveryBatchNormValue() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-faults-restore-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spec = ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 16, 8], seed: 5)
        let logger = InProcess.quiet
        func runtime() throws -> ClientRuntime {
            let d = Digits5.makeDomains([.svhn], trainCount: 40, testCount: 20, seed: 1)[0]
            return try ClientRuntime(name: "svhn-0", learner: LocalLearner(model: try spec.build(), data: LocalData(train: d.train, test: d.test),
                                                                          clientName: "svhn-0"),
                                     stateDirectory: dir, logger: logger)
        }
        let first = try runtime()
        var request = Fedkit_V1_FitRequest()
        request.round = 4
        request.parameters = Fedkit_V1_Payload(first.learner.model.wireTensors { !$0.isBatchNorm })
        var settings = TrainingSettings()
        settings.batchSize = 8
        request.config = settings.proto
        _ = try first.fit(request)
        let trained = first.learner.model.snapshot { $0.isBatchNorm }
        let fresh = try spec.build().snapshot { $0.isBatchNorm }
        XCTAssertNotEqual(trained.entries.map(\.tensor.values), fresh.entries.map(\.tensor.values), "training changed no BatchNorm value")

        let second = try runtime()
        XCTAssertEqual(second.lastRound, 4)
        let restored = second.learner.model.snapshot { $0.isBatchNorm }
        XCTAssertEqual(restored.names, trained.names)
        for (name, t) in trained.entries { XCTAssertEqual(restored[name]!.values, t.values, name) }
    }
}
