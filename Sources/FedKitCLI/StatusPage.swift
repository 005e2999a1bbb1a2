import Federated
import Foundation
import Transport

/// What `fed-server --status-port` serves: `/metrics` (Prometheus text format), `/status`
/// (the same as JSON) and `/healthz` (200 while the run is healthy, 503 once it failed).
public enum StatusPage {
    public static func routes(_ board: StatusBoard) -> @Sendable (String) -> StatusEndpoint.Response? {
        { path in
            switch path {
            case "/metrics":
                return .init(contentType: "text/plain; version=0.0.4; charset=utf-8", body: prometheus(board.snapshot()))
            case "/status":
                return .init(contentType: "application/json", body: json(board.snapshot()))
            case "/healthz", "/":
                let s = board.snapshot()
                return s.phase == .failed ? .init(status: 503, body: "failed\n") : .init(body: "ok\n")
            default:
                return nil
            }
        }
    }

    /// The status in Prometheus's text exposition format (version 0.0.4).
    public static func prometheus(_ s: FederationStatus) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: [(String, String)], value: Double)]) {
            out += "# HELP fedkit_\(name) \(help)\n# TYPE fedkit_\(name) \(type)\n"
            for sample in samples {
                let labels = sample.labels.isEmpty ? "" : "{" + sample.labels.map { "\($0.0)=\"\(escape($0.1))\"" }.joined(separator: ",") + "}"
                out += "fedkit_\(name)\(labels) \(number(sample.value))\n"
            }
        }
        func one(_ name: String, _ type: String, _ help: String, _ value: Double?) {
            if let value { metric(name, type, help, [([], value)]) }
        }
        let strategy = [("strategy", s.strategy)]
        metric("info", "gauge", "The run's strategy (value 1).", [(strategy, 1)])
        one("rounds_total", "gauge", "Rounds the run is configured for.", Double(s.totalRounds))
        one("rounds_completed", "gauge", "Rounds completed, restored ones included.", Double(s.completedRounds))
        one("round_in_progress", "gauge", "The round in progress (0 between rounds).", Double(s.round ?? 0))
        metric("phase", "gauge", "1 for the phase the coordinator is in.",
               FederationStatus.Phase.allCases.map { ([("phase", $0.rawValue)], $0 == s.phase ? 1 : 0) })
        one("clients_connected", "gauge", "Clients connected now.", Double(s.connectedClients.count))
        one("start_time_seconds", "gauge", "When this process started coordinating (Unix time).", s.started)
        one("last_round_end_time_seconds", "gauge", "When the last round ended (Unix time).", s.lastRoundEnded)
        if let t = s.lastRoundTiming {
            metric("last_round_seconds", "gauge", "Durations of the last round's parts.",
                   [([("part", "fit")], t.fitSeconds), ([("part", "evaluate")], t.evaluateSeconds), ([("part", "checkpoint")], t.checkpointSeconds)])
        }
        if let r = s.lastRound {
            one("last_round", "gauge", "Number of the last completed round.", Double(r.round))
            one("last_round_clients_selected", "gauge", "Clients asked to train in the last round.", Double(r.selected.count))
            one("last_round_clients_answered", "gauge", "Clients whose update the last round averaged.", Double(r.fit.count))
            one("last_round_mean_test_accuracy", "gauge", "Mean test accuracy over the clients that evaluated the last round.", r.meanAccuracy.map(Double.init))
            if !r.evaluation.isEmpty {
                metric("client_test_accuracy", "gauge", "Each client's test accuracy on its own data in the last round.",
                       r.evaluation.map { ([("client", $0.client), ("domain", $0.domain)], Double($0.accuracy)) })
                metric("client_test_loss", "gauge", "Each client's test loss on its own data in the last round.",
                       r.evaluation.map { ([("client", $0.client), ("domain", $0.domain)], Double($0.loss)) })
            }
        }
        one("round_attempts_total", "counter", "Attempts at rounds since start (a missed quorum adds one).", Double(s.roundAttempts))
        one("updates_accepted_total", "counter", "Client updates averaged since start.", Double(s.updatesAccepted))
        one("updates_refused_total", "counter", "Client messages refused since start.", Double(s.updatesRefused))
        one("clients_dropped_total", "counter", "Clients dropped from a round (no answer, disconnected) since start.", Double(s.clientsDropped))
        one("received_bytes_total", "counter", "Tensor bytes received from clients since start.", Double(s.bytesReceived))
        one("sent_bytes_total", "counter", "Tensor bytes sent to clients since start.", Double(s.bytesSent))
        return out
    }

    /// The status as one JSON object (snake_case keys, as the metrics file).
    public static func json(_ s: FederationStatus) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "+Inf", negativeInfinity: "-Inf", nan: "NaN")
        return ((try? encoder.encode(s)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }

    /// A label value with `\`, `"` and line feeds escaped, as the format requires.
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
