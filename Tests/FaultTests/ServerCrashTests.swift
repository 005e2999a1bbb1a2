import Foundation
import NN
import Tensor
import XCTest
@testable import Federated

/// The coordinator killed with SIGKILL, between rounds and at arbitrary moments (during
/// training, aggregation, evaluation and checkpoint writes), then restarted on the same
/// state directory and port.
final class ServerCrashTests: XCTestCase {
    func testKilledServerResumesFromItsLastCompleteRoundAndClientsReconnect() throws {
        let names = ["mnist-0", "svhn-0"]
        let fed = try DaemonFederation(name: "server-crash", clients: names)
        addTeardownBlock { [unowned self] in fed.stopAll(); fed.finish(keepingLogs: (self.testRun?.totalFailureCount ?? 0) > 0) }
        let dir = fed.root + "/server"
        let rounds = 16
        func start(port: Int) throws -> Daemon {
            try fed.startServer(port: port, stateDir: dir, rounds: rounds, minFit: 2, minClients: 2, roundTimeout: 20)
        }
        var server = try start(port: 0)
        let port = try fed.port(of: server)
        // Fast reconnection: the test restarts the server often.
        let clients = try names.map { try fed.startClient($0, port: port, trainCount: 400) }

        var lastRound: UInt64 = 0
        var kills = 0
        var resumedFrom: [UInt64] = []
        var generator = SplitMix64(seed: 7)
        /// Kills the server, checks the checkpoint it left, restarts it and checks where it resumed.
        func crashAndRestart() throws {
            server.killNow()
            kills += 1
            let checkpoint = try readCheckpoint(dir)  // throws if it were torn or half-written
            let round = checkpoint?.metadata.round ?? 0
            XCTAssertGreaterThanOrEqual(round, lastRound, "the checkpoint went back in time")
            XCTAssertEqual(checkpoint?.metadata.metrics.map(\.round) ?? [], (0..<round).map { $0 + 1 })
            lastRound = round
            resumedFrom.append(round)
            server = try start(port: port)
            if round > 0 {
                try fed.waitForLine(server, containing: "resuming after round \(round) ", timeout: 30)
            }
        }

        // 1. Between rounds: right after a round's progress line (its checkpoint is on disk).
        for target in [2, 4] {
            try fed.waitForLine(server, containing: "round \(target)/\(rounds):", timeout: 90)
            try crashAndRestart()
            XCTAssertGreaterThanOrEqual(lastRound, UInt64(target))
        }
        // 2. At arbitrary moments once the clients are back: in training, aggregation, evaluation or a checkpoint write.
        for _ in 0..<8 where lastRound < UInt64(rounds - 3) {
            try fed.waitFor("clients to reconnect", timeout: 60, logs: [server]) {
                server.text.components(separatedBy: "joined (domain").count - 1 >= names.count ? true : nil
            }
            usleep(UInt32(generator.next() % 300_000))
            try crashAndRestart()
        }

        XCTAssertEqual(try server.waitForExit(timeout: 120), 0, server.tail())
        let metrics = fed.metrics(dir)
        XCTAssertEqual(metrics.map(\.round), (1...UInt64(rounds)).map { $0 }, "a round was lost or repeated")
        XCTAssertEqual(try readCheckpoint(dir)?.metadata.round, UInt64(rounds))
        for c in clients { XCTAssertEqual(try c.waitForExit(timeout: 20), 0, c.tail()) }
        XCTAssertGreaterThanOrEqual(kills, 5)
        print("server crash: \(kills) SIGKILLs, resumed after rounds \(resumedFrom); \(rounds)/\(rounds) rounds completed, none lost or repeated")
    }

    /// Nothing of the model is lost to crashes: a FedAvg run whose server is killed and
    /// restarted several times ends with the same global model as an uninterrupted run
    /// (FedAvg shares every tensor, and local training is seeded by round and client, so a
    /// round redone after a crash reproduces the lost one).
    func testAModelTrainedThroughServerCrashesEqualsOneTrainedWithout() throws {
        // Two clients whose updates arrive in whatever order the network gives: the streaming
        // sum is order-independent, so the comparison can be exact.
        let names = ["mnist-0", "svhn-0"]
        let rounds = 12
        func federation(_ label: String, kills: Int) throws -> (model: StateDictionary, kills: Int) {
            let fed = try DaemonFederation(name: label, clients: names, strategy: "fedavg")
            var ok = false
            defer { fed.stopAll(); fed.finish(keepingLogs: !ok) }
            let dir = fed.root + "/server"
            func start(port: Int) throws -> Daemon {
                try fed.startServer(port: port, stateDir: dir, rounds: rounds, minFit: 2, minClients: 2, roundTimeout: 20)
            }
            var server = try start(port: 0)
            let port = try fed.port(of: server)
            let clients = try names.map { try fed.startClient($0, port: port, trainCount: 600) }
            var generator = SplitMix64(seed: 13)
            var done = 0
            while done < kills {
                try fed.waitFor("clients to connect", timeout: 60, logs: [server]) {
                    server.text.components(separatedBy: "joined (domain").count - 1 >= names.count ? true : nil
                }
                usleep(UInt32(generator.next() % 200_000))
                guard server.isRunning else { break }
                server.killNow()
                done += 1
                server = try start(port: port)
            }
            XCTAssertEqual(try server.waitForExit(timeout: 120), 0, server.tail())
            for c in clients { XCTAssertEqual(try c.waitForExit(timeout: 20), 0, c.tail()) }
            XCTAssertEqual(fed.metrics(dir).map(\.round), (1...UInt64(rounds)).map { $0 })
            let final = try XCTUnwrap(try TensorArchive.read(dir + "/final-model.fkt", as: CheckpointMetadata.self))
            ok = true
            return (final.tensors, done)
        }
        let reference = try federation("uninterrupted", kills: 0)
        let crashed = try federation("crashed", kills: 4)
        XCTAssertGreaterThanOrEqual(crashed.kills, 2)
        XCTAssertEqual(crashed.model.names, reference.model.names)
        var maxDifference: Float = 0
        for (name, t) in reference.model.entries {
            let a = t.values, b = crashed.model[name]!.values
            var worst: Float = 0
            for (x, y) in zip(a, b) { worst = max(worst, abs(x - y) / max(1, abs(x))) }
            if worst > 0 { print("  \(name): largest relative difference \(worst); first values \(Array(a.prefix(4))) vs \(Array(b.prefix(4)))") }
            maxDifference = max(maxDifference, worst)
        }
        XCTAssertEqual(maxDifference, 0, "the model trained through crashes differs from the uninterrupted one")
        XCTAssertEqual(InProcess.bytes(crashed.model), InProcess.bytes(reference.model))
        print("server crash, model check: \(crashed.kills) SIGKILLs over \(rounds) FedAvg rounds; the final model is bit for bit the uninterrupted run's (0 bytes differ)")
    }

    /// SIGKILL a process while it rewrites a multi-megabyte archive over and over: the file on
    /// disk is always a whole, verifiable archive (an old or a new one), never a torn one.
    func testAKillDuringACheckpointWriteNeverLeavesAHalfWrittenFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-faults-torn-\(getpid())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let target = dir + "/checkpoint.fkt"
        var generator = SplitMix64(seed: 11)
        var versions = Set<UInt64>()
        let kills = 25
        var midWrite = 0
        for _ in 0..<kills {
            let writer = try ArchiveWriterProcess.start(target: target)
            defer { writer.killNow() }
            // Let it write a few versions, then kill it at a random moment.
            usleep(UInt32(30_000 + generator.next() % 120_000))
            writer.killNow()
            // A temporary file left behind means the kill landed inside a write.
            if AtomicFile.removeStaleTemporaries(of: target) > 0 { midWrite += 1 }
            guard let archive = try TensorArchive.read(target, as: ArchiveWriterProcess.Version.self) else { continue }
            versions.insert(archive.metadata.version)
            let big = try XCTUnwrap(archive.tensors["big"])
            XCTAssertEqual(big.values.first, Float(archive.metadata.version % 1000))
            XCTAssertEqual(big.values.last, Float(archive.metadata.version % 1000))
        }
        XCTAssertGreaterThan(versions.count, 1, "the writer never replaced the file")
        XCTAssertGreaterThan(midWrite, 0, "no kill landed inside a write")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["checkpoint.fkt"])
        print("torn-write: \(kills) SIGKILLs of a process rewriting a 4 MB archive, \(midWrite) inside a write; the file always decoded (\(versions.count) distinct versions seen)")
    }

    /// Runs in a child copy of the test process (see `ArchiveWriterProcess`); does nothing otherwise.
    func testArchiveWriterChild() throws {
        guard let target = ProcessInfo.processInfo.environment[ArchiveWriterProcess.variable] else { return }
        var version = UInt64(Date().timeIntervalSince1970 * 1000) % 1_000_000
        let big = Tensor(zeros: [4 * 1024 * 1024 / 4])  // 4 MB: each write takes a while
        while true {
            version += 1
            let v = Float(version % 1000)
            for i in 0..<big.count { big.data[i] = v }
            try TensorArchive.write(StateDictionary([("big", big)]), metadata: ArchiveWriterProcess.Version(version: version), to: target)
        }
    }
}

/// A child process of the test bundle that runs only `testArchiveWriterChild`.
struct ArchiveWriterProcess {
    static let variable = "FEDKIT_FAULTS_ARCHIVE_WRITER"
    struct Version: Codable { var version: UInt64 }
    let process: Process

    static func start(target: String) throws -> ArchiveWriterProcess {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        #if os(Linux)
        p.arguments = ["FaultTests.ServerCrashTests/testArchiveWriterChild"]
        #else
        p.arguments = ["-XCTest", "FaultTests.ServerCrashTests/testArchiveWriterChild"] + Array(ProcessInfo.processInfo.arguments.suffix(1))
        #endif
        var env = ProcessInfo.processInfo.environment
        env[variable] = target
        p.environment = env
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return ArchiveWriterProcess(process: p)
    }

    func killNow() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

