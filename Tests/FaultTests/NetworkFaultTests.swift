import Foundation
import NIOCore
import NIOPosix
import NN
import Transport
import Wire
import XCTest
@testable import Federated

/// Stalled, flapping and late clients.
final class NetworkFaultTests: XCTestCase {
    /// A client frozen with SIGSTOP holds its TCP connection open and answers nothing: the round
    /// closes at its deadline with the others. Thawed, its result for the old round arrives late
    /// and is refused, never averaged into a newer round.
    func testAStoppedClientIsTimedOutAndItsLateResultIsRefused() throws {
        let names = ["mnist-0", "svhn-0", "usps-0"]
        let fed = try DaemonFederation(name: "sigstop", clients: names)
        addTeardownBlock { [unowned self] in fed.stopAll(); fed.finish(keepingLogs: (self.testRun?.totalFailureCount ?? 0) > 0) }
        let dir = fed.root + "/server"
        let rounds = 6
        let timeout = 3.0
        let server = try fed.startServer(stateDir: dir, rounds: rounds, minFit: 2, minClients: 3, roundTimeout: timeout)
        let port = try fed.port(of: server)
        var clients: [String: Daemon] = [:]
        for n in names { clients[n] = try fed.startClient(n, port: port) }
        let frozen = "usps-0"

        try fed.waitForLine(server, containing: "round 1/\(rounds):", timeout: 60)
        clients[frozen]!.signal(SIGSTOP)
        // Some later round goes ahead without it, closing at its deadline.
        let stalled = try fed.waitFor("a round that timed out the stopped client", timeout: 60, logs: [server]) {
            fed.metrics(dir).first { $0.dropped == [frozen] }
        }
        XCTAssertEqual(stalled.fit.map(\.client), ["mnist-0", "svhn-0"])
        XCTAssertTrue(server.text.contains("no answer from \(frozen) before the deadline"), server.tail())
        clients[frozen]!.signal(SIGCONT)

        XCTAssertEqual(try server.waitForExit(timeout: 90), 0, server.tail())
        let metrics = fed.metrics(dir)
        XCTAssertEqual(metrics.map(\.round), (1...UInt64(rounds)).map { $0 })
        // Its answer to the stalled round came later and was refused as late (no offence).
        // (The log, not the metrics: a refusal between two rounds is logged but belongs to no round's record.)
        let late = server.text.split(separator: "\n").filter {
            $0.contains("refused from client \"\(frozen)\": fit result for round \(stalled.round) arrived late")
        }
        XCTAssertEqual(late.count, 1, "late result not refused exactly once:\n\(server.tail(30))")
        // No round averaged an update from a round other than its own: every fit entry is a selected client.
        for m in metrics { XCTAssertTrue(Set(m.fit.map(\.client)).isSubset(of: Set(m.selected)), "round \(m.round)") }
        XCTAssertTrue(metrics.contains { $0.round > stalled.round && $0.fit.map(\.client).contains(frozen) },
                      "the thawed client never trained again")
        print("SIGSTOP: round \(stalled.round) closed at its \(timeout) s deadline without the stopped client; its late result refused; \(rounds) rounds completed")
    }

    /// A client that connects and disconnects in a loop (whole TLS sessions, half-finished
    /// handshakes and bare TCP connections) while the federation trains.
    func testAFlappingClientCannotWedgeTheServer() async throws {
        let config = InProcess.configuration(rounds: 6, minFit: 2, minClients: 2)
        let recorder = LogRecorder()
        let coordinator = try Coordinator(configuration: config, logger: recorder.logger)
        let server = try await InProcess.startServer()
        let port = server.port
        let honest = try ["mnist-0", "svhn-0"].map { try InProcess.runtime($0, domain: $0 == "mnist-0" ? .mnist : .svhn, model: config.model) }
        let tasks = honest.map { r in Task { try await InProcess.serveHonestly(r, port: port) } }
        let stop = ManagedFlag()
        let flaps = ManagedCounter()
        // The honest clients join first; then the flapping starts and goes on for the whole run.
        let deadline = Date().addingTimeInterval(30)
        let acceptor = Task { try await coordinator.run(connections: server.connections) }
        while recorder.all.filter({ $0.contains("joined (domain") }).count < 2 && Date() < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        // Three flapping loops under one name: each new session also replaces the previous one.
        let flappers = (0..<3).map { _ in Task {
            while !stop.value {
                let n = flaps.increment()
                switch n % 3 {
                case 0:
                    // A whole session, closed at once (sometimes while it is selected for a round).
                    if let c = try? await InProcess.connect("flap-0", port: port, hello: InProcess.hello("flap-0", declaredExamples: 10, domain: "usps")) {
                        if n % 2 == 0 { try? await Task.sleep(for: .milliseconds(30)) }
                        await c.close()
                    }
                case 1:
                    // A bare TCP connection that never starts TLS, dropped.
                    if let ch = try? await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get() {
                        try? await ch.close()
                    }
                default:
                    // A session that is welcomed, then abandoned without a Goodbye mid-request.
                    if let c = try? await InProcess.connect("flap-0", port: port, hello: InProcess.hello("flap-0", declaredExamples: 10, domain: "usps")) {
                        // Leaves at its first request, or after 300 ms when none comes.
                        let closer = Task { try? await Task.sleep(for: .milliseconds(300)); await c.close() }
                        for try await _ in c.inbound { break }
                        closer.cancel()
                        await c.close()
                    }
                }
            }
        } }
        let metrics: [RoundMetrics]
        do {
            metrics = try await acceptor.value
        } catch {
            stop.set(); for f in flappers { f.cancel() }
            throw error
        }
        stop.set()
        for f in flappers { _ = await f.result }
        await server.close()
        for t in tasks { _ = try? await t.value }
        XCTAssertEqual(metrics.map(\.round), [1, 2, 3, 4, 5, 6])
        for m in metrics {
            XCTAssertTrue(Set(["mnist-0", "svhn-0"]).isSubset(of: Set(m.fit.map(\.client))), "round \(m.round): \(m.fit.map(\.client))")
            XCTAssertFalse(m.fit.map(\.client).contains("flap-0"))
        }
        XCTAssertGreaterThan(flaps.value, 20)
        print("flapping: \(flaps.value) connects/disconnects during \(metrics.count) rounds; every round completed")
    }
}

final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; count += 1; return count }
    var value: Int { lock.lock(); defer { lock.unlock() }; return count }
}
