import FedKitCLI
import Foundation
import Transport
import Wire
import XCTest
@testable import Federated

/// Many lightweight TLS clients, all in this process, against one real `fed-server`.
///
/// Each client has its own certificate and answers the server's requests by returning the
/// weights it was sent. CI runs 200 clients; set FEDKIT_LOAD_CLIENTS (e.g. 1000) for the
/// figures in docs/faults.md.
final class LoadTests: XCTestCase {
    func testOneServerHoldsManyClientsThroughAFullRound() async throws {
        let count = Int(ProcessInfo.processInfo.environment["FEDKIT_LOAD_CLIENTS"] ?? "") ?? 200
        let names = (0..<count).map { String(format: "load-%04d", $0) }
        let fed = try DaemonFederation(name: "load", clients: names, strategy: "fedavg")
        addTeardownBlock { [unowned self] in fed.stopAll(); fed.finish(keepingLogs: (self.testRun?.totalFailureCount ?? 0) > 0) }
        let dir = fed.root + "/server"
        let server = try fed.startServer(stateDir: dir, rounds: 1, minFit: count, minClients: count, roundTimeout: 120,
                                         extra: ["--log-level", "warning"])
        let port = try fed.port(of: server)
        let pid = server.pid
        let sampler = ResourceSampler(pid: pid)
        let root = fed.certificates

        let sessions = ManagedCounter()
        let answered = ManagedCounter()
        let tasks = TaskGroupBox()
        // Connect in batches so the listen backlog is never the limit.
        for batch in stride(from: 0, to: count, by: 50) {
            try await withThrowingTaskGroup(of: PeerConnection.self) { group in
                for name in names[batch..<min(count, batch + 50)] {
                    group.addTask {
                        var hello = Fedkit_V1_Hello()
                        hello.clientName = name
                        hello.dataset.domain = "load"
                        hello.dataset.trainExamples = 10
                        let credentials = try Credentials.load(certificateFile: "\(root)/\(name).crt", keyFile: "\(root)/\(name).key", caFile: "\(root)/ca.crt")
                        var config = ClientConfiguration.mutualTLS(credentials: credentials, hello: hello)
                        config.serverHostname = "localhost"
                        config.logger = InProcess.quiet
                        config.connectTimeout = .seconds(30)
                        return try await FederationClient.connect(host: "127.0.0.1", port: port, configuration: config)
                    }
                }
                for try await connection in group {
                    _ = sessions.increment()
                    tasks.add(Task { await Self.echo(connection, answered: answered) })
                }
            }
            sampler.sample()
        }
        while server.isRunning {
            sampler.sample()
            try await Task.sleep(for: .milliseconds(100))
        }
        XCTAssertEqual(server.process.terminationStatus, 0, server.tail())
        await tasks.waitAll()
        let metrics = fed.metrics(dir)
        XCTAssertEqual(metrics.count, 1)
        XCTAssertEqual(metrics.first?.fit.count, count, "not every client's update was averaged")
        XCTAssertEqual(metrics.first?.evaluation.count, count)
        XCTAssertEqual(sessions.value, count)
        print("load: one fed-server held \(count) mutual-TLS clients through a full round; peak RSS \(sampler.peakRSSKiB / 1024) MiB, peak open fds \(sampler.peakFDs)")
    }

    /// A lightweight client: returns the weights it is sent, evaluates as 50 %.
    static func echo(_ connection: PeerConnection, answered: ManagedCounter) async {
        do {
            for try await envelope in connection.inbound {
                switch envelope.body {
                case .fitRequest(let request):
                    var r = Fedkit_V1_FitResult()
                    r.round = request.round
                    r.parameters = request.parameters
                    r.numExamples = 10
                    try await connection.send(Envelope(.fitResult(r)))
                    _ = answered.increment()
                case .evaluateRequest(let request):
                    var e = Fedkit_V1_EvaluateResult()
                    e.round = request.round; e.accuracy = 0.5; e.loss = 1; e.numExamples = 10
                    try await connection.send(Envelope(.evaluateResult(e)))
                case .goodbye:
                    await connection.close()
                    return
                default:
                    continue
                }
            }
        } catch {}
    }
}

/// Peak resident memory and open file descriptors of a process, read from /proc.
final class ResourceSampler: @unchecked Sendable {
    let pid: Int32
    private(set) var peakRSSKiB = 0
    private(set) var peakFDs = 0
    init(pid: Int32) { self.pid = pid }

    func sample() {
        if let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
           let kib = Int(line.split(separator: " ").dropFirst().first ?? "") {
            peakRSSKiB = max(peakRSSKiB, kib)
        }
        if let fds = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd") {
            peakFDs = max(peakFDs, fds.count)
        }
    }
}

/// Tasks started in a loop and awaited together.
final class TaskGroupBox: @unchecked Sendable {
    private let lock = NSLock()
    private var tasks: [Task<Void, Never>] = []
    func add(_ t: Task<Void, Never>) { lock.lock(); tasks.append(t); lock.unlock() }
    var all: [Task<Void, Never>] { lock.lock(); defer { lock.unlock() }; return tasks }
    func waitAll() async {
        for t in all { await t.value }
    }
}
