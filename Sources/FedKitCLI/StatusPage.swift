import ArgumentParser
import Federated
import Foundation
import Transport

/// What `fed-server --status-port` serves: `/metrics` (Prometheus text format), `/status`
/// (the same as JSON) and `/healthz` (200 while the run is healthy, 503 once it failed).
public enum StatusPage {
    public static func routes(_ board: StatusBoard<FederationStatus>) -> @Sendable (String) -> StatusEndpoint.Response? {
        routes(metrics: { prometheus(board.snapshot()) }, status: { json(board.snapshot()) },
               healthy: { board.snapshot().phase != .failed })
    }

    /// The three paths, from what renders each.
    static func routes(metrics: @escaping @Sendable () -> String, status: @escaping @Sendable () -> String,
                       healthy: @escaping @Sendable () -> Bool) -> @Sendable (String) -> StatusEndpoint.Response? {
        { path in
            switch path {
            case "/metrics": return .init(contentType: "text/plain; version=0.0.4; charset=utf-8", body: metrics())
            case "/status": return .init(contentType: "application/json", body: status())
            case "/healthz", "/": return healthy() ? .init(body: "ok\n") : .init(status: 503, body: "failed\n")
            default: return nil
            }
        }
    }

    /// The status in Prometheus's text exposition format (version 0.0.4).
    public static func prometheus(_ s: FederationStatus) -> String {
        var out = PrometheusText()
        func one(_ name: String, _ type: String, _ help: String, _ value: Double?) {
            if let value { out.metric(name, type, help, [([], value)]) }
        }
        out.metric("info", "gauge", "The run's strategy (value 1).", [([("strategy", s.strategy)], 1)])
        one("rounds_total", "gauge", "Rounds the run is configured for.", Double(s.totalRounds))
        one("rounds_completed", "gauge", "Rounds completed, restored ones included.", Double(s.completedRounds))
        one("round_in_progress", "gauge", "The round in progress (0 between rounds).", Double(s.round ?? 0))
        out.metric("phase", "gauge", "1 for the phase the coordinator is in.",
                   FederationStatus.Phase.allCases.map { ([("phase", $0.rawValue)], $0 == s.phase ? 1 : 0) })
        one("clients_connected", "gauge", "Clients connected now.", Double(s.connectedClients.count))
        one("start_time_seconds", "gauge", "When this process started coordinating (Unix time).", s.started)
        one("last_round_end_time_seconds", "gauge", "When the last round ended (Unix time).", s.lastRoundEnded)
        one("certificate_expiry_time_seconds", "gauge", "When the server's certificate, or the first of its chain or CA, expires (Unix time); clients refuse it from then on.", s.certificateExpires)
        if let t = s.lastRoundTiming {
            out.metric("last_round_seconds", "gauge", "Durations of the last round's parts.",
                       [([("part", "fit")], t.fitSeconds), ([("part", "evaluate")], t.evaluateSeconds), ([("part", "checkpoint")], t.checkpointSeconds)])
        }
        if let r = s.lastRound {
            one("last_round", "gauge", "Number of the last completed round.", Double(r.round))
            one("last_round_clients_selected", "gauge", "Clients asked to train in the last round.", Double(r.selected.count))
            one("last_round_clients_answered", "gauge", "Clients whose update the last round averaged.", Double(r.fit.count))
            one("last_round_mean_test_accuracy", "gauge", "Mean test accuracy over the clients that evaluated the last round.", r.meanAccuracy.map(Double.init))
            if !r.evaluation.isEmpty {
                out.metric("client_test_accuracy", "gauge", "Each client's test accuracy on its own data in the last round.",
                           r.evaluation.map { ([("client", $0.client), ("domain", $0.domain)], Double($0.accuracy)) })
                out.metric("client_test_loss", "gauge", "Each client's test loss on its own data in the last round.",
                           r.evaluation.map { ([("client", $0.client), ("domain", $0.domain)], Double($0.loss)) })
            }
        }
        one("round_attempts_total", "counter", "Attempts at rounds since start (a missed quorum adds one).", Double(s.roundAttempts))
        one("updates_accepted_total", "counter", "Client updates averaged since start.", Double(s.updatesAccepted))
        one("updates_streamed_total", "counter", "Of the client updates averaged, those folded as they arrived.", Double(s.updatesStreamed))
        one("updates_taken_back_total", "counter", "Streamed client updates taken back after part of them was folded (refused, cut off, late).", Double(s.updatesTakenBack))
        one("updates_refused_total", "counter", "Client messages refused since start.", Double(s.updatesRefused))
        one("clients_dropped_total", "counter", "Clients dropped from a round (no answer, disconnected) since start.", Double(s.clientsDropped))
        one("received_bytes_total", "counter", "Tensor bytes received from clients since start.", Double(s.bytesReceived))
        one("sent_bytes_total", "counter", "Tensor bytes sent to clients since start.", Double(s.bytesSent))
        return out.text
    }

    /// What `fed-client --status-port` serves: the same three paths, for every client the
    /// process hosts (`/status` is a JSON array; `/healthz` is ok while the process runs).
    public static func routes(_ boards: [StatusBoard<ClientStatus>]) -> @Sendable (String) -> StatusEndpoint.Response? {
        routes(metrics: { prometheus(boards.map { $0.snapshot() }) }, status: { json(boards.map { $0.snapshot() }) },
               healthy: { true })
    }

    /// Client daemons' figures (prefix `fedkit_local_`), one sample per hosted client.
    public static func prometheus(_ clients: [ClientStatus]) -> String {
        var out = PrometheusText()
        func each(_ name: String, _ type: String, _ help: String, _ value: (ClientStatus) -> Double?) {
            let samples = clients.compactMap { c in value(c).map { ([("client", c.client), ("domain", c.domain)], $0) } }
            if !samples.isEmpty { out.metric("local_" + name, type, help, samples) }
        }
        each("connected", "gauge", "1 while the client is in session with the server.", { $0.connected ? 1 : 0 })
        each("finished", "gauge", "1 once the server said the federation is over.", { $0.finished ? 1 : 0 })
        each("train_examples", "gauge", "Training examples the client holds.", { Double($0.trainExamples) })
        each("test_examples", "gauge", "Test examples the client holds.", { Double($0.testExamples) })
        each("last_trained_round", "gauge", "The last round the client trained (restored from local state).", { Double($0.lastTrainedRound) })
        each("train_loss", "gauge", "Mean training loss of the last round trained.", { $0.lastFit.map { Double($0.loss) } })
        each("train_accuracy", "gauge", "Training accuracy of the last round trained.", { $0.lastFit.map { Double($0.accuracy) } })
        each("train_seconds", "gauge", "Duration of the last local training.", { $0.lastFit?.seconds })
        each("train_steps", "gauge", "Steps of the last local training.", { $0.lastFit.map { Double($0.steps) } })
        each("agc_clipped_units", "gauge", "Units adaptive gradient clipping clipped in the last round (FedWon).", { $0.lastFit.map { Double($0.clippedUnits) } })
        each("last_evaluated_round", "gauge", "The round of the last evaluation.", { $0.lastEvaluation.map { Double($0.round) } })
        each("test_accuracy", "gauge", "Accuracy of the global model on the client's test data at the last evaluation.", { $0.lastEvaluation.map { Double($0.accuracy) } })
        each("test_loss", "gauge", "Loss of the global model on the client's test data at the last evaluation.", { $0.lastEvaluation.map { Double($0.loss) } })
        each("last_activity_time_seconds", "gauge", "When the client last finished a request (Unix time).", { $0.lastActivity })
        each("certificate_expiry_time_seconds", "gauge", "When the client's certificate, or the first of its chain or CA, expires (Unix time); the server refuses it from then on.", { $0.certificateExpires })
        each("sessions_total", "counter", "Sessions with the server since start (reconnections add one).", { Double($0.sessions) })
        each("rounds_trained_total", "counter", "Rounds trained since start.", { Double($0.roundsTrained) })
        each("evaluations_total", "counter", "Evaluations since start.", { Double($0.evaluations) })
        each("requests_refused_total", "counter", "Requests the client could not use (answered with an error) since start.", { Double($0.requestsRefused) })
        return out.text
    }

    /// A status as JSON (snake_case keys, as the metrics file).
    public static func json<T: Encodable>(_ s: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
        return ((try? encoder.encode(s)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }
}

/// Prometheus's text exposition format (version 0.0.4), built metric by metric.
struct PrometheusText {
    private(set) var text = ""

    /// `fedkit_NAME` with its HELP and TYPE lines and one line per sample.
    mutating func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: [(String, String)], value: Double)]) {
        text += "# HELP fedkit_\(name) \(help)\n# TYPE fedkit_\(name) \(type)\n"
        for sample in samples {
            let labels = sample.labels.isEmpty ? "" : "{" + sample.labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
            text += "fedkit_\(name)\(labels) \(Self.number(sample.value))\n"
        }
    }

    /// A label value with `\\`, `"` and line feeds escaped, as the format requires.
    static func escape(_ v: String) -> String {
        v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }

    static func number(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }
}

/// `--status-port` and `--status-host`, shared by both daemons.
public struct StatusOptions: ParsableArguments {
    @Option(help: "Serve this daemon's status over plain HTTP on this port (0: any free port, printed at start): /metrics (Prometheus), /status (JSON), /healthz. Default: off.")
    public var statusPort: Int?
    @Option(help: "Address the status port listens on (default 127.0.0.1; it carries names and accuracies but no model data: open it only to a monitoring network).")
    public var statusHost: String?
    public init() {}

    /// The port and address asked for (flags or the config file), checked; nil when off.
    public func resolve(_ config: ConfigFile) throws -> (host: String, port: Int)? {
        guard let port = try config.resolve(statusPort, "status-port") else { return nil }
        guard (0...65535).contains(port) else { throw ValidationError("--status-port (\(port)) must be a port number, 0...65535") }
        return (try config.resolve(statusHost, "status-host", "127.0.0.1"), port)
    }

    /// Starts the endpoint at `address` and prints where it listens.
    /// - Throws: `ValidationError` naming the address when it cannot be bound.
    public static func start(_ address: (host: String, port: Int), daemon: String,
                             routes: @escaping @Sendable (String) -> StatusEndpoint.Response?) async throws -> StatusEndpoint {
        let endpoint: StatusEndpoint
        do {
            endpoint = try await StatusEndpoint.start(host: address.host, port: address.port, routes: routes)
        } catch {
            throw ValidationError("--status-port \(address.port) on \(address.host): \(error)")
        }
        Console.line("\(daemon): status on http://\(address.host):\(endpoint.port) (/metrics, /status, /healthz)")
        return endpoint
    }
}
