import Foundation
import XCTest

/// A client cut off in the network: every packet of its host dropped at the bridge, while its
/// TCP connection stays open at both ends and neither daemon is told anything.
///
/// Runs a real federation with `cluster/netns/launch.sh` (server and three clients, each in its
/// own network namespace), disables the client's port of the bridge after round 1, and enables
/// it again as soon as the server has given up on the client at a round's deadline. Needs root
/// and iproute2's `ip netns` and `bridge`; anywhere else the test is skipped and says why.
final class NetnsPacketDropTests: XCTestCase {
    /// One line of `metrics.jsonl` (the fields this test reads; keys are snake_case).
    struct Round: Decodable {
        struct Client: Decodable { var client: String }
        var round: Int
        var selected: [String]
        var fit: [Client]
        var refused: [String]
        var dropped: [String]
        var evaluation: [Client]
        var attempts: Int
    }

    /// One line of `timings.jsonl`.
    struct Timing: Decodable {
        var round: Int
        var fitSeconds: Double
        var evaluateSeconds: Double
    }

    static func lines<T: Decodable>(_ path: String, as: T.Type) -> [T] {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? decoder.decode(T.self, from: Data($0.utf8)) }
    }

    /// Polls `probe` every 100 ms until it returns a value; fails after `timeout` seconds or when
    /// the launcher exits first.
    func waitFor<T>(_ what: String, timeout: TimeInterval, launcher: NetnsLauncher.Running, out: String,
                    _ probe: () -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let value = probe() { return value }
            guard launcher.isRunning else { break }
            usleep(100_000)
        }
        if let value = probe() { return value }
        throw NetnsLauncher.SetupError(description: "no \(what) within \(Int(timeout)) s (launcher \(launcher.isRunning ? "running" : "exited")); server.log:\n\(NetnsLauncher.tail("\(out)/server.log"))")
    }

    func testAClientCutOffAtTheBridgeIsTimedOutAndTrainsAgainOnTheSameConnection() throws {
        let bin = try NetnsLauncher.requireNamespacesAndDaemons(for: "the packet-drop test")
        let prefix = "fkd\(getpid() % 100_000)"
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-netns-\(prefix)-\(UUID().uuidString)").path
        let rounds = 6
        let roundTimeout = 5.0
        let victim = "usps-0"
        let others = ["mnist-0", "svhn-0"]
        let started = Date()
        let launcher = try NetnsLauncher.Running([
            "--clients", "3", "--domains", "mnist,usps,svhn", "--rounds", "\(rounds)", "--strategy", "fedwon",
            "--prefix", prefix, "--port", "7443", "--bin", bin, "--out", out, "--timeout", "80",
            "--server-arg", "--connect-timeout", "--server-arg", "60",
            "--server-arg", "--round-timeout", "--server-arg", "\(roundTimeout)",
            "--server-arg", "--min-fit-clients", "--server-arg", "2",
            "--server-arg", "--batch-size", "--server-arg", "16",
            "--client-arg", "--train-count", "--client-arg", "100", "--client-arg", "--test-count", "--client-arg", "50",
            "--", "--widths", "4,4,8,16,8",
        ])
        defer {
            // Safety net: whatever happened, no daemon or namespace of this test survives it.
            if launcher.isRunning { _ = try? launcher.wait(timeout: 0) }
            _ = try? NetnsLauncher.run(["--clean", prefix], timeout: 30)
            if (testRun?.totalFailureCount ?? 0) == 0 { try? FileManager.default.removeItem(atPath: out) }
            else { print("packet-drop test failed: logs kept in \(out)") }
        }
        let metricsPath = "\(out)/server/metrics.jsonl"
        let serverLog = "\(out)/server.log"

        // Round 1 with everyone, over a working network.
        let first = try waitFor("round 1 in metrics.jsonl", timeout: 60, launcher: launcher, out: out) {
            Self.lines(metricsPath, as: Round.self).first
        }
        XCTAssertEqual(first.fit.map(\.client).sorted(), ["mnist-0", "svhn-0", "usps-0"], "round 1 should train every client")

        // The bridge port that cables the client's host, from the launcher's network.txt.
        let network = (try? String(contentsOfFile: "\(out)/network.txt", encoding: .utf8)) ?? ""
        let entry = network.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            .first { $0.count == 5 && $0[0] == "port" && $0[3] == victim }
        let fields = try XCTUnwrap(entry, "network.txt names no port for \(victim):\n\(network)")
        let (port, host) = (fields[1], fields[2])
        let sw = "\(prefix)-sw"

        // Cut it off: the bridge drops every frame to and from that port.
        let cut = NetnsLauncher.shell("bridge -n \(sw) link set dev \(port) state 0")
        XCTAssertEqual(cut.status, 0, "cannot disable \(port): \(cut.output)")
        let cutAt = Date()
        XCTAssertTrue(NetnsLauncher.shell("bridge -n \(sw) link show dev \(port)").output.contains("state disabled"))
        // Nobody is told: the client's interface still has its carrier.
        let link = NetnsLauncher.shell("ip -n \(host) -brief link show dev eth0").output
        XCTAssertTrue(link.contains("LOWER_UP") && !link.contains("NO-CARRIER"), "the client's link went down: \(link)")

        // The server gives up on it at a round's deadline...
        let pattern = try NSRegularExpression(pattern: "round ([0-9]+): no answer from ([a-z0-9, -]+) before the deadline")
        let (stalledRound, silent) = try waitFor("round closed without \(victim)", timeout: 40, launcher: launcher, out: out) { () -> (Int, String)? in
            let text = (try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? ""
            for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let r = Range(m.range(at: 1), in: text).flatMap { Int(text[$0]) }
                let names = Range(m.range(at: 2), in: text).map { String(text[$0]) } ?? ""
                if let r, names.contains(victim) { return (r, names) }
            }
            return nil
        }
        // ...and the link comes back at once.
        let mend = NetnsLauncher.shell("bridge -n \(sw) link set dev \(port) state 3")
        XCTAssertEqual(mend.status, 0, "cannot enable \(port) again: \(mend.output)")
        let cutSeconds = Date().timeIntervalSince(cutAt)
        XCTAssertEqual(silent, victim, "only the cut-off client should be silent")

        let run = try launcher.wait(timeout: 80)
        let wall = Date().timeIntervalSince(started)
        let serverText = (try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? ""
        let clientText = (try? String(contentsOfFile: "\(out)/\(victim).log", encoding: .utf8)) ?? ""
        XCTAssertFalse(run.timedOut, "the federation did not finish in time:\n\(run.output)")
        XCTAssertEqual(run.status, 0, "launch.sh failed:\n\(run.output)\n--- server.log ---\n\(NetnsLauncher.tail(serverLog))")
        XCTAssertEqual(NetnsLauncher.namespaces(prefix: prefix), [], "namespaces left behind by launch.sh")

        let metrics = Self.lines(metricsPath, as: Round.self)
        let timings = Self.lines("\(out)/server/timings.jsonl", as: Timing.self)
        XCTAssertEqual(metrics.map(\.round), Array(1...rounds), "every round should be in metrics.jsonl")
        let stalled = try XCTUnwrap(metrics.first { $0.round == stalledRound }, "no record of round \(stalledRound)")

        // The stalled round: the client was still selected (the server saw an open connection),
        // the round closed at its deadline with the other two, in one attempt, not blocked.
        XCTAssertTrue(stalled.selected.contains(victim), "round \(stalledRound) did not select \(victim): \(stalled.selected)")
        XCTAssertEqual(stalled.dropped, [victim])
        XCTAssertEqual(stalled.fit.map(\.client).sorted(), others)
        XCTAssertEqual(stalled.attempts, 1)
        let fitSeconds = try XCTUnwrap(timings.first { $0.round == stalledRound }?.fitSeconds)
        XCTAssertGreaterThanOrEqual(fitSeconds, roundTimeout - 0.05, "round \(stalledRound) closed before its deadline")
        XCTAssertLessThan(fitSeconds, roundTimeout + 2, "round \(stalledRound) was held past its deadline")
        for m in metrics where m.round != stalledRound {
            XCTAssertEqual(m.dropped, [], "round \(m.round) dropped a client")
        }

        // The connection survived the cut at both ends: one session, no reconnect, no read timeout.
        XCTAssertEqual(serverText.components(separatedBy: "client \"\(victim)\" joined").count - 1, 1,
                       "\(victim) should have joined once:\n\(NetnsLauncher.tail(serverLog, lines: 60))")
        for sign in ["client \"\(victim)\" reconnected", "client \"\(victim)\" disconnected", "no message for"] {
            XCTAssertFalse(serverText.contains(sign), "server.log says \"\(sign)\":\n\(NetnsLauncher.tail(serverLog, lines: 60))")
        }
        XCTAssertEqual(clientText.components(separatedBy: "connected to ").count - 1, 1,
                       "\(victim) should have connected once:\n\(NetnsLauncher.tail("\(out)/\(victim).log", lines: 40))")
        // What was in flight when the link went dead arrives once it is back, late: its answer to
        // the stalled round is refused exactly once, and nothing of it reaches any average. The cut
        // can also catch the evaluation of the round before (whose deadline is not logged), and
        // the stalled round's evaluation request waits for a TCP retransmission: each of those two
        // evaluations is in its round's record or refused as late, never both, never neither.
        // Nothing else is refused, so the client stays below the offences that disconnect it.
        let refusals = serverText.split(separator: "\n").filter { $0.contains("refused from client \"\(victim)\": ") }
        let lateFits = refusals.filter { $0.contains(": fit result for round") }
        XCTAssertEqual(lateFits.count, 1, "late result not refused exactly once:\n\(NetnsLauncher.tail(serverLog, lines: 60))")
        XCTAssertTrue(lateFits.allSatisfy { $0.contains("fit result for round \(stalledRound) was not requested") }, "\(lateFits)")
        var lateEvaluations: [Int] = []
        for r in [stalledRound - 1, stalledRound] {
            let evaluated = metrics.first { $0.round == r }?.evaluation.map(\.client).contains(victim) ?? false
            let refused = refusals.filter { $0.contains("evaluation result for round \(r) was not requested") }.count
            XCTAssertEqual(refused, evaluated ? 0 : 1, "round \(r)'s evaluation by \(victim): in the record \(evaluated), refusals \(refusals)")
            if refused > 0 { lateEvaluations.append(r) }
        }
        XCTAssertEqual(refusals.count, 1 + lateEvaluations.count, "unexpected refusals: \(refusals)")
        XCTAssertFalse(serverText.contains("disconnecting client \"\(victim)\""))
        for m in metrics {
            XCTAssertTrue(Set(m.fit.map(\.client)).isSubset(of: Set(m.selected)), "round \(m.round)")
            for r in m.refused {
                XCTAssertTrue(r.hasPrefix("\(victim): ") && refusals.contains { $0.hasSuffix(r.dropFirst(victim.count + 2)) },
                              "round \(m.round) recorded a refusal the log does not explain: \(r)")
            }
            if m.round < stalledRound - 1 || m.round > stalledRound {
                XCTAssertTrue(m.evaluation.map(\.client).contains(victim), "round \(m.round) should evaluate \(victim)")
            }
        }

        // From the next round on it trains again, on the same connection.
        for m in metrics where m.round > stalledRound {
            XCTAssertEqual(m.fit.map(\.client).sorted(), ["mnist-0", "svhn-0", "usps-0"], "round \(m.round) should train every client")
        }
        print("""
            packet drop: \(victim)'s port \(port) disabled after round 1 for \(String(format: "%.1f", cutSeconds)) s; \
            round \(stalledRound) closed at its \(roundTimeout) s deadline (\(String(format: "%.2f", fitSeconds)) s) without it; \
            its late fit result\(lateEvaluations.isEmpty ? "" : " (and its late evaluation of round \(lateEvaluations.map(String.init).joined(separator: ", ")))") refused; \
            trained again in round \(stalledRound + 1) \
            on the same connection; \(metrics.count)/\(rounds) rounds; \(String(format: "%.0f", wall)) s
            """)
    }
}
