@testable import Federated
import Foundation
import Transport
import XCTest
@testable import FedKitCLI
#if canImport(Glibc)
import Glibc
#endif

/// `fed-server --status-port`: what a monitoring system scrapes while a federation runs.
final class StatusTests: XCTestCase {
    /// One HTTP/1.1 request over a plain socket; the status and body of the answer.
    static func http(_ port: Int, _ path: String, method: String = "GET", raw: String? = nil) throws -> (status: Int, body: String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DaemonError("socket() failed") }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw DaemonError("cannot connect to 127.0.0.1:\(port)") }
        let request = raw ?? "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n\r\n"
        _ = request.withCString { send(fd, $0, strlen($0), 0) }
        var bytes = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        guard let statusLine = text.split(separator: "\r\n").first, let code = statusLine.split(separator: " ").dropFirst().first.flatMap({ Int($0) }),
              let split = text.range(of: "\r\n\r\n") else {
            throw DaemonError("not an HTTP response: \(text.prefix(200))")
        }
        return (code, String(text[split.upperBound...]))
    }

    func testPrometheusTextHasEveryFigureWithItsTypeAndEscapedLabels() throws {
        var s = FederationStatus(strategy: "fedwon", totalRounds: 10, completedRounds: 3, phase: .training, started: 1_700_000_000)
        s.round = 4
        s.connectedClients = ["a", "b"]
        s.lastRound = RoundMetrics(round: 3, selected: ["a", "b"], fit: [ClientFit(client: "a", examples: 5, trainLoss: 1, trainAccuracy: 0.5)],
                                   refused: ["b: late"], dropped: ["b"],
                                   evaluation: [ClientEvaluation(client: "a \"quoted\"\\", domain: "svhn", loss: 0.25, accuracy: 0.75, examples: 10)],
                                   meanAccuracy: 0.75, bytesOut: 200, bytesIn: 100, attempts: 1)
        s.lastRoundTiming = RoundTiming(round: 3, fitSeconds: 1.5, evaluateSeconds: 0.5, checkpointSeconds: 0.125)
        s.roundAttempts = 4
        s.updatesAccepted = 5
        s.bytesReceived = 12_345_678_901
        s.certificateExpires = 1_800_000_000
        let text = StatusPage.prometheus(s)
        for line in [
            "fedkit_info{strategy=\"fedwon\"} 1",
            "fedkit_rounds_total 10", "fedkit_rounds_completed 3", "fedkit_round_in_progress 4",
            "fedkit_phase{phase=\"training\"} 1", "fedkit_phase{phase=\"waiting\"} 0",
            "fedkit_clients_connected 2", "fedkit_start_time_seconds 1700000000",
            "fedkit_last_round_seconds{part=\"fit\"} 1.5", "fedkit_last_round_seconds{part=\"checkpoint\"} 0.125",
            "fedkit_last_round 3", "fedkit_last_round_clients_selected 2", "fedkit_last_round_clients_answered 1",
            "fedkit_last_round_mean_test_accuracy 0.75",
            "fedkit_client_test_accuracy{client=\"a \\\"quoted\\\"\\\\\",domain=\"svhn\"} 0.75",
            "fedkit_client_test_loss{client=\"a \\\"quoted\\\"\\\\\",domain=\"svhn\"} 0.25",
            "fedkit_round_attempts_total 4", "fedkit_updates_accepted_total 5", "fedkit_received_bytes_total 12345678901",
            "fedkit_certificate_expiry_time_seconds 1800000000",
            "# TYPE fedkit_updates_refused_total counter", "# TYPE fedkit_clients_connected gauge",
        ] {
            XCTAssertTrue(text.split(separator: "\n").contains(Substring(line)), "missing \(line) in:\n\(text)")
        }
        // Every sample line is NAME[{labels}] VALUE, after its HELP and TYPE.
        var typed = Set<String>()
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") { typed.insert(String(line.split(separator: " ")[2])); continue }
            if line.hasPrefix("#") { continue }
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            XCTAssertTrue(typed.contains(name), "\(name) has no TYPE line")
            XCTAssertNotNil(Double(line.split(separator: " ").last!), "value of \(line)")
        }
        // A client daemon's figures, one sample per hosted client; none of a round not yet trained.
        var c = ClientStatus(client: "svhn-1", domain: "svhn", trainExamples: 74, testExamples: 50, lastTrainedRound: 2)
        c.connected = true
        c.lastFit = .init(round: 3, examples: 74, steps: 3, loss: 1.25, accuracy: 0.5, seconds: 0.5, clippedUnits: 7)
        c.certificateExpires = 1_800_000_001
        let idle = ClientStatus(client: "svhn-2", domain: "svhn", trainExamples: 70, testExamples: 50)
        let local = StatusPage.prometheus([c, idle])
        for line in ["fedkit_local_connected{client=\"svhn-1\",domain=\"svhn\"} 1", "fedkit_local_connected{client=\"svhn-2\",domain=\"svhn\"} 0",
                     "fedkit_local_train_loss{client=\"svhn-1\",domain=\"svhn\"} 1.25", "fedkit_local_agc_clipped_units{client=\"svhn-1\",domain=\"svhn\"} 7",
                     "fedkit_local_last_trained_round{client=\"svhn-1\",domain=\"svhn\"} 2", "# TYPE fedkit_local_sessions_total counter",
                     "fedkit_local_certificate_expiry_time_seconds{client=\"svhn-1\",domain=\"svhn\"} 1800000001"] {
            XCTAssertTrue(local.split(separator: "\n").contains(Substring(line)), "missing \(line) in:\n\(local)")
        }
        XCTAssertFalse(local.contains("train_loss{client=\"svhn-2\""), local)
        XCTAssertFalse(local.contains("fedkit_local_test_accuracy"), "no evaluation yet: \(local)")
        // /healthz turns 503 once the run has failed; the other paths go on answering.
        let board = StatusBoard(FederationStatus(strategy: "fedavg", totalRounds: 1, completedRounds: 0))
        let routes = StatusPage.routes(board)
        XCTAssertEqual(routes("/healthz")?.status, 200)
        board.update { $0.phase = .failed }
        XCTAssertEqual(routes("/healthz")?.status, 503)
        XCTAssertTrue(routes("/metrics")?.body.contains("fedkit_phase{phase=\"failed\"} 1") ?? false)
        XCTAssertNil(routes("/nope"))
        // Before any round: no last-round figures at all.
        let fresh = StatusPage.prometheus(FederationStatus(strategy: "fedavg", totalRounds: 1, completedRounds: 0))
        XCTAssertFalse(fresh.contains("fedkit_last_round"), fresh)
        XCTAssertFalse(fresh.contains("certificate_expiry"), fresh)
    }

    func testTheEndpointAnswersGETsOfKnownPathsAndNothingElse() async throws {
        let endpoint = try await StatusEndpoint.start(host: "127.0.0.1", port: 0) { path in
            path == "/hello" ? .init(body: "hi\n") : nil
        }
        let port = endpoint.port
        // Blocking sockets: the endpoint answers on its own event loops.
        let hello = try Self.http(port, "/hello?x=1")
        XCTAssertEqual(hello.status, 200)
        XCTAssertEqual(hello.body, "hi\n")
        XCTAssertEqual(try Self.http(port, "/nope").status, 404)
        XCTAssertEqual(try Self.http(port, "/hello", method: "POST").status, 405)
        XCTAssertEqual(try Self.http(port, "", raw: "this is not HTTP\r\n\r\n").status, 400)
        XCTAssertEqual(try Self.http(port, "/hello").body, "hi\n", "the endpoint still serves after a bad request")
        await endpoint.close()
    }

    /// One fed-client process hosting two clients: its status port shows each of them.
    func testAProcessHostingSeveralClientsShowsEachOnItsStatusPort() throws {
        let names = ["svhn-0", "usps-0"]
        let fed = try DaemonFederation(name: "status-host", clients: names)
        addTeardownBlock { [unowned self] in fed.stopAll(); fed.finish(keepingLogs: (self.testRun?.totalFailureCount ?? 0) > 0) }
        let server = try fed.startServer(stateDir: fed.root + "/server", rounds: 8, minFit: 2, minClients: 2, roundTimeout: 30)
        let host = try fed.startHost(names, port: try fed.port(of: server), trainCount: 400, extra: ["--status-port", "0"])
        let line = try fed.waitForLine(host, containing: "status on http://127.0.0.1:", timeout: 30)
        let port = try XCTUnwrap(line.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }, line)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let statuses = try fed.waitFor("both clients to train a round", timeout: 90, logs: [server, host]) { () -> [ClientStatus]? in
            let s = try decoder.decode([ClientStatus].self, from: Data(Self.http(port, "/status").body.utf8))
            return s.count == 2 && s.allSatisfy({ $0.roundsTrained >= 1 && $0.lastEvaluation != nil }) ? s : nil
        }
        XCTAssertEqual(statuses.map(\.client), names)
        XCTAssertEqual(statuses.map(\.domain), ["svhn", "usps"])
        // Each hosted client's certificate expiry, from its own certificate (the test PKI's 90 days).
        for s in statuses { XCTAssertEqual(s.certificateExpires ?? 0, Date().timeIntervalSince1970 + 90 * 86_400, accuracy: 3600, s.client) }
        let metrics = try Self.http(port, "/metrics").body
        for n in names { XCTAssertTrue(metrics.contains("fedkit_local_rounds_trained_total{client=\"\(n)\","), metrics) }
        XCTAssertEqual(try server.waitForExit(timeout: 120), 0, server.tail())
        XCTAssertEqual(try host.waitForExit(timeout: 60), 0, host.tail())
    }

    /// A real fed-server with `--status-port 0`: /metrics, /status and /healthz follow the run.
    func testAServersStatusFollowsTheRun() throws {
        let names = ["mnist-0", "usps-0"]
        let fed = try DaemonFederation(name: "status", clients: names)
        addTeardownBlock { [unowned self] in fed.stopAll(); fed.finish(keepingLogs: (self.testRun?.totalFailureCount ?? 0) > 0) }
        let rounds = 8  // rounds of a fraction of a second each: the test looks in on one in the middle
        let server = try fed.startServer(stateDir: fed.root + "/server", rounds: rounds, minFit: 2, minClients: 2, roundTimeout: 30,
                                         extra: ["--status-port", "0"])
        let port = try fed.port(of: server)
        let line = try fed.waitForLine(server, containing: "status on http://127.0.0.1:", timeout: 30)
        let statusPort = try XCTUnwrap(line.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }, line)
        // Streamed updates are folded as they arrive; others received whole are bounded by
        // default: as many as fit in 1 GiB.
        let bound = try fed.waitForLine(server, containing: "as they arrive; other updates: at most ", timeout: 30)
        let updates = try XCTUnwrap(bound.components(separatedBy: "at most ").last.flatMap { Int($0.prefix { $0.isNumber }) }, bound)
        XCTAssertGreaterThan(updates, 18, "the test's small model fits more updates in 1 GiB than the digit model: \(bound)")
        // Before any client: waiting, nobody connected, healthy.
        let before = try Self.http(statusPort, "/metrics")
        XCTAssertEqual(before.status, 200)
        XCTAssertTrue(before.body.contains("fedkit_rounds_completed 0\n"), before.body)
        XCTAssertTrue(before.body.contains("fedkit_clients_connected 0\n"), before.body)
        XCTAssertEqual(try Self.http(statusPort, "/healthz").body, "ok\n")

        let clients = try names.map { try fed.startClient($0, port: port, trainCount: 400, extra: $0 == "mnist-0" ? ["--status-port", "0"] : []) }
        let clientLine = try fed.waitForLine(clients[0], containing: "status on http://127.0.0.1:", timeout: 30)
        let clientPort = try XCTUnwrap(clientLine.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }, clientLine)
        let status = try fed.waitFor("a round to complete", timeout: 90, logs: [server]) { () -> FederationStatus? in
            let body = try Self.http(statusPort, "/status").body
            let decoder = JSONDecoder()
            decoder.keyDecodingStrategy = .convertFromSnakeCase
            let s = try decoder.decode(FederationStatus.self, from: Data(body.utf8))
            return s.completedRounds >= 1 && s.completedRounds < UInt64(rounds) ? s : nil
        }
        XCTAssertEqual(status.strategy, "fedbn")
        XCTAssertEqual(status.totalRounds, rounds)
        XCTAssertEqual(status.connectedClients, names.sorted())
        XCTAssertEqual(status.lastRound?.selected.sorted(), names.sorted())
        XCTAssertEqual(status.lastRound?.evaluation.count, 2)
        XCTAssertGreaterThan(status.bytesReceived, 0)
        XCTAssertGreaterThanOrEqual(status.updatesAccepted, 2)
        XCTAssertEqual(status.certificateExpires ?? 0, Date().timeIntervalSince1970 + 90 * 86_400, accuracy: 3600)
        let metrics = try Self.http(statusPort, "/metrics").body
        XCTAssertTrue(metrics.contains("fedkit_client_test_accuracy{client=\"mnist-0\",domain=\"mnist\"} "), metrics)
        XCTAssertTrue(metrics.contains("fedkit_clients_connected 2\n"), metrics)
        // The client's own view, from its status port.
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let local = try XCTUnwrap(try decoder.decode([ClientStatus].self, from: Data(Self.http(clientPort, "/status").body.utf8)).first)
        XCTAssertEqual(local.client, "mnist-0")
        XCTAssertEqual(local.domain, "mnist")
        XCTAssertTrue(local.connected)
        XCTAssertEqual(local.sessions, 1)
        XCTAssertGreaterThanOrEqual(local.roundsTrained, 1)
        XCTAssertEqual(local.lastFit?.round, local.lastTrainedRound)
        XCTAssertNotNil(local.lastEvaluation)
        let localMetrics = try Self.http(clientPort, "/metrics").body
        XCTAssertTrue(localMetrics.contains("fedkit_local_connected{client=\"mnist-0\",domain=\"mnist\"} 1\n"), localMetrics)
        XCTAssertTrue(localMetrics.contains("# TYPE fedkit_local_rounds_trained_total counter"), localMetrics)
        XCTAssertEqual(try server.waitForExit(timeout: 120), 0, server.tail())
        // The status port closes with the server.
        XCTAssertThrowsError(try Self.http(statusPort, "/healthz"))
        // What the status reported agrees with the metrics file.
        XCTAssertEqual(fed.metrics(fed.root + "/server").first(where: { $0.round == status.lastRound?.round }), status.lastRound)
    }
}
