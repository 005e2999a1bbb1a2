import Foundation
import XCTest

/// A client cut off in the network: every packet of its host dropped at the bridge, while its
/// TCP connection stays open at both ends and neither daemon is told anything.
///
/// Each test runs a real federation with `cluster/netns/launch.sh` (server and three clients,
/// each in its own network namespace), disables the client's port of the bridge after round 1,
/// and enables it again as soon as the server has given up on the client. Needs root and
/// iproute2's `ip netns` and `bridge`; anywhere else the tests are skipped and say why.
final class NetnsPacketDropTests: XCTestCase {
    /// One line of `metrics.jsonl` (the fields these tests read; keys are snake_case).
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

    static let victim = "usps-0"
    static let others = ["mnist-0", "svhn-0"]
    static let everyone = ["mnist-0", "svhn-0", "usps-0"]
    static let roundTimeout = 5.0

    /// A federation of `everyone` started by the launcher in the background, whose client
    /// `victim` can be cut off at the bridge and cabled again.
    final class Federation {
        let prefix: String
        let out: String
        let rounds: Int
        let launcher: NetnsLauncher.Running
        let started = Date()
        /// The bridge port cabling the victim's host, and that host's namespace (after round 1).
        private(set) var port = ""
        private(set) var host = ""
        var switchNamespace: String { "\(prefix)-sw" }
        var serverLog: String { "\(out)/server.log" }
        var serverText: String { (try? String(contentsOfFile: serverLog, encoding: .utf8)) ?? "" }
        var clientText: String { (try? String(contentsOfFile: "\(out)/\(victim).log", encoding: .utf8)) ?? "" }
        var metrics: [Round] { lines("\(out)/server/metrics.jsonl", as: Round.self) }
        var timings: [Timing] { lines("\(out)/server/timings.jsonl", as: Timing.self) }

        init(prefix: String, rounds: Int, widths: String, epochs: Int = 1, bin: String) throws {
            self.prefix = prefix
            self.rounds = rounds
            out = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-netns-\(prefix)-\(UUID().uuidString)").path
            launcher = try NetnsLauncher.Running([
                "--clients", "3", "--domains", "mnist,usps,svhn", "--rounds", "\(rounds)", "--strategy", "fedwon",
                "--prefix", prefix, "--port", "7443", "--bin", bin, "--out", out, "--timeout", "80",
                "--server-arg", "--connect-timeout", "--server-arg", "60",
                "--server-arg", "--round-timeout", "--server-arg", "\(roundTimeout)",
                "--server-arg", "--min-fit-clients", "--server-arg", "2",
                "--server-arg", "--batch-size", "--server-arg", "16", "--server-arg", "--epochs", "--server-arg", "\(epochs)",
                "--client-arg", "--train-count", "--client-arg", "100", "--client-arg", "--test-count", "--client-arg", "50",
                "--", "--widths", widths,
            ])
        }

        /// Stops whatever still runs, deletes the namespaces (the safety net for a failed test)
        /// and the logs, unless `keepingLogs`.
        func finish(keepingLogs: Bool) {
            if launcher.isRunning { _ = try? launcher.wait(timeout: 0) }
            _ = try? NetnsLauncher.run(["--clean", prefix], timeout: 30)
            if keepingLogs { print("packet-drop test failed: logs kept in \(out)") }
            else { try? FileManager.default.removeItem(atPath: out) }
        }

        /// Polls `probe` every 100 ms until it returns a value; throws after `timeout` seconds or
        /// when the launcher exits first.
        func waitFor<T>(_ what: String, timeout: TimeInterval, _ probe: () -> T?) throws -> T {
            let deadline = Date().addingTimeInterval(timeout)
            while Date() < deadline {
                if let value = probe() { return value }
                guard launcher.isRunning else { break }
                usleep(100_000)
            }
            if let value = probe() { return value }
            throw NetnsLauncher.SetupError(description: "no \(what) within \(Int(timeout)) s (launcher \(launcher.isRunning ? "running" : "exited")); server.log:\n\(NetnsLauncher.tail(serverLog))")
        }

        /// Waits for round 1, then finds the victim's bridge port in the launcher's network.txt.
        func waitForRoundOne() throws -> Round {
            let first = try waitFor("round 1 in metrics.jsonl", timeout: 60) { metrics.first }
            let network = (try? String(contentsOfFile: "\(out)/network.txt", encoding: .utf8)) ?? ""
            let entry = network.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
                .first { $0.count == 5 && $0[0] == "port" && $0[3] == victim }
            guard let entry else { throw NetnsLauncher.SetupError(description: "network.txt names no port for \(victim):\n\(network)") }
            (port, host) = (entry[1], entry[2])
            return first
        }

        /// Disables the victim's port: the bridge drops every frame to and from it. Checks that
        /// the port is disabled and that the client's own interface still has its carrier.
        func cut() {
            let cut = NetnsLauncher.shell("bridge -n \(switchNamespace) link set dev \(port) state 0")
            XCTAssertEqual(cut.status, 0, "cannot disable \(port): \(cut.output)")
            XCTAssertTrue(NetnsLauncher.shell("bridge -n \(switchNamespace) link show dev \(port)").output.contains("state disabled"))
            let link = NetnsLauncher.shell("ip -n \(host) -brief link show dev eth0").output
            XCTAssertTrue(link.contains("LOWER_UP") && !link.contains("NO-CARRIER"), "the client's link went down: \(link)")
        }

        /// Lets the victim's port forward again.
        func mend() {
            let mend = NetnsLauncher.shell("bridge -n \(switchNamespace) link set dev \(port) state 3")
            XCTAssertEqual(mend.status, 0, "cannot enable \(port) again: \(mend.output)")
        }

        /// The first round the server closed without an answer from the victim, and the names it
        /// logged as silent then.
        func waitForStalledRound(timeout: TimeInterval) throws -> (round: Int, silent: String) {
            let pattern = try NSRegularExpression(pattern: "round ([0-9]+): no answer from ([a-z0-9, -]+) before the deadline")
            return try waitFor("round closed without \(victim)", timeout: timeout) { () -> (Int, String)? in
                let text = serverText
                for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    let r = Range(m.range(at: 1), in: text).flatMap { Int(text[$0]) }
                    let names = Range(m.range(at: 2), in: text).map { String(text[$0]) } ?? ""
                    if let r, names.contains(victim) { return (r, names) }
                }
                return nil
            }
        }

        /// Waits for the launcher; checks it finished in time, with status 0, leaving no namespace.
        func waitForTheEnd() throws {
            let run = try launcher.wait(timeout: 80)
            XCTAssertFalse(run.timedOut, "the federation did not finish in time:\n\(run.output)")
            XCTAssertEqual(run.status, 0, "launch.sh failed:\n\(run.output)\n--- server.log ---\n\(NetnsLauncher.tail(serverLog))")
            XCTAssertEqual(NetnsLauncher.namespaces(prefix: prefix), [], "namespaces left behind by launch.sh")
            XCTAssertEqual(metrics.map(\.round), Array(1...rounds), "every round should be in metrics.jsonl")
        }

        /// Lines of the server's log about refused messages from the victim.
        var refusals: [Substring] {
            serverText.split(separator: "\n").filter { $0.contains("refused from client \"\(victim)\": ") }
        }
    }

    /// The model is small enough for every request to fit in the socket buffers, so the cut is
    /// invisible to both ends: the round closes at its deadline without the client, and once the
    /// link is back its TCP connection carries on as if nothing happened.
    func testAClientCutOffAtTheBridgeIsTimedOutAndTrainsAgainOnTheSameConnection() throws {
        let bin = try NetnsLauncher.requireNamespacesAndDaemons(for: "the packet-drop test")
        let fed = try Federation(prefix: "fkd\(getpid() % 100_000)", rounds: 6, widths: "4,4,8,16,8", bin: bin)
        defer { fed.finish(keepingLogs: (testRun?.totalFailureCount ?? 0) > 0) }
        let (victim, others, roundTimeout, rounds) = (Self.victim, Self.others, Self.roundTimeout, fed.rounds)

        let first = try fed.waitForRoundOne()
        XCTAssertEqual(first.fit.map(\.client).sorted(), Self.everyone, "round 1 should train every client")
        fed.cut()
        let cutAt = Date()
        // The server gives up on it at a round's deadline, and the link comes back at once.
        let (stalledRound, silent) = try fed.waitForStalledRound(timeout: 40)
        fed.mend()
        let cutSeconds = Date().timeIntervalSince(cutAt)
        XCTAssertEqual(silent, victim, "only the cut-off client should be silent")

        try fed.waitForTheEnd()
        let wall = Date().timeIntervalSince(fed.started)
        let (serverText, clientText, metrics, timings, refusals) = (fed.serverText, fed.clientText, fed.metrics, fed.timings, fed.refusals)
        let (serverLog, out, port) = (fed.serverLog, fed.out, fed.port)
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
        for sign in ["client \"\(victim)\" reconnected", "client \"\(victim)\" disconnected", "read timeout"] {
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
        let lateFits = refusals.filter { $0.contains(": fit result for round") }
        XCTAssertEqual(lateFits.count, 1, "late result not refused exactly once:\n\(NetnsLauncher.tail(serverLog, lines: 60))")
        XCTAssertTrue(lateFits.allSatisfy { $0.contains("fit result for round \(stalledRound) arrived late") }, "\(lateFits)")
        var lateEvaluations: [Int] = []
        for r in [stalledRound - 1, stalledRound] {
            let evaluated = metrics.first { $0.round == r }?.evaluation.map(\.client).contains(victim) ?? false
            let refused = refusals.filter { $0.contains("evaluation result for round \(r) arrived late") }.count
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
            XCTAssertEqual(m.fit.map(\.client).sorted(), Self.everyone, "round \(m.round) should train every client")
        }
        print("""
            packet drop: \(victim)'s port \(port) disabled after round 1 for \(String(format: "%.1f", cutSeconds)) s; \
            round \(stalledRound) closed at its \(roundTimeout) s deadline (\(String(format: "%.2f", fitSeconds)) s) without it; \
            its late fit result\(lateEvaluations.isEmpty ? "" : " (and its late evaluation of round \(lateEvaluations.map(String.init).joined(separator: ", ")))") refused; \
            trained again in round \(stalledRound + 1) \
            on the same connection; \(metrics.count)/\(rounds) rounds; \(String(format: "%.0f", wall)) s
            """)
    }

    /// The model (13 MB; fc1 alone is 784 x 4096 Float32 weights) is larger than the socket
    /// buffers, so the server cannot hand the cut-off client its request. A send that waited
    /// for the socket would hold the round until the read timeout noticed the silence (30 s
    /// after the client's last message, for a 5 s deadline); instead the request gives up at
    /// the round's deadline and closes the connection. The round closes on time, and the client
    /// reconnects once the link is back and trains again.
    func testACutOffClientThatCannotTakeTheModelDoesNotHoldTheRoundPastItsDeadline() throws {
        let bin = try NetnsLauncher.requireNamespacesAndDaemons(for: "the packet-drop test")
        // Four local epochs make each round last about a second, so the rounds after the cut
        // outlast the client's noticing that its connection is gone (at the first TCP
        // retransmission once the link is back, seconds later) and its rejoining.
        let fed = try Federation(prefix: "fkb\(getpid() % 100_000)", rounds: 12, widths: "4,4,16,4096,8", epochs: 4, bin: bin)
        defer { fed.finish(keepingLogs: (testRun?.totalFailureCount ?? 0) > 0) }
        let (victim, others, roundTimeout, rounds) = (Self.victim, Self.others, Self.roundTimeout, fed.rounds)

        let first = try fed.waitForRoundOne()
        XCTAssertEqual(first.fit.map(\.client).sorted(), Self.everyone, "round 1 should train every client")
        XCTAssertGreaterThan(fed.timings.first?.fitSeconds ?? 0, 0)
        fed.cut()
        let cutAt = Date()
        // Whether the cut caught the training request or (the client's answer being lost) the
        // evaluation request after it, a request cannot be delivered: at its deadline the server
        // closes that connection. The link comes back at once.
        let closing = "client \"\(victim)\" had not taken its request by the deadline; closed its connection"
        try fed.waitFor("connection closed at a deadline", timeout: 4 * roundTimeout + 10) { fed.serverText.contains(closing) ? () : nil }
        fed.mend()
        let cutSeconds = Date().timeIntervalSince(cutAt)
        let stalledRound = try fed.waitForStalledRound(timeout: 1).round

        try fed.waitForTheEnd()
        let wall = Date().timeIntervalSince(fed.started)
        let (serverText, metrics, timings) = (fed.serverText, fed.metrics, fed.timings)
        let log = NetnsLauncher.tail(fed.serverLog, lines: 60)

        // No round was held past its deadline, in training or in evaluation.
        for t in timings {
            XCTAssertLessThan(t.fitSeconds, roundTimeout + 1, "round \(t.round)'s training was held past its deadline")
            XCTAssertLessThan(t.evaluateSeconds, roundTimeout + 1, "round \(t.round)'s evaluation was held past its deadline")
        }
        let stalled = try XCTUnwrap(metrics.first { $0.round == stalledRound })
        XCTAssertEqual(stalled.dropped, [victim])
        XCTAssertEqual(stalled.fit.map(\.client).sorted(), others)
        XCTAssertEqual(stalled.attempts, 1)
        XCTAssertGreaterThanOrEqual(timings.first { $0.round == stalledRound }?.fitSeconds ?? 0, roundTimeout - 0.05)

        // The server closed the connection once, at a deadline, and the client left the
        // federation at that moment: no later round sampled it on the dead connection. It
        // dialled again when the link was back, joined again, and trained in a later round.
        // Nothing late arrived to be refused: what was in flight died with the closed connection.
        XCTAssertEqual(serverText.components(separatedBy: closing).count - 1, 1, log)
        XCTAssertEqual(serverText.components(separatedBy: "client \"\(victim)\" joined").count - 1, 2, log)
        let rejoined = try XCTUnwrap(serverText.range(of: "client \"\(victim)\" joined", options: .backwards))
        XCTAssertNotNil(serverText.range(of: "client \"\(victim)\" left", range: serverText.range(of: closing)!.upperBound..<rejoined.lowerBound),
                        "\(victim) should leave when its connection is closed:\n\(log)")
        XCTAssertFalse(serverText.contains("client \"\(victim)\" disconnected during round"), log)
        XCTAssertTrue(fed.clientText.contains("reconnecting"), NetnsLauncher.tail("\(fed.out)/\(victim).log", lines: 30))
        XCTAssertEqual(fed.refusals, [], log)
        let back = try XCTUnwrap(metrics.first { $0.round > stalledRound && $0.fit.map(\.client).contains(victim) },
                                 "\(victim) never trained again after round \(stalledRound):\n\(log)")
        for m in metrics where m.round >= back.round {
            XCTAssertEqual(m.fit.map(\.client).sorted(), Self.everyone, "round \(m.round) should train every client")
        }
        for m in metrics where m.round > stalledRound && m.round < back.round {
            XCTAssertEqual(m.selected.sorted(), others, "round \(m.round) ran while \(victim) was away")
            XCTAssertEqual(m.dropped, [])
        }
        let held = timings.map { max($0.fitSeconds, $0.evaluateSeconds) }.max() ?? 0
        print("""
            packet drop, large model: \(victim)'s port \(fed.port) disabled after round 1 for \(String(format: "%.1f", cutSeconds)) s; \
            round \(stalledRound) closed at its \(roundTimeout) s deadline without it and the server closed its connection \
            (longest phase of any round \(String(format: "%.2f", held)) s); it reconnected and trained again in round \(back.round); \
            \(metrics.count)/\(rounds) rounds; \(String(format: "%.0f", wall)) s
            """)
    }
}
