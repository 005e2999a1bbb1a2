import Data
import Federated
import Foundation

/// summary.json, the comparison table and report.html of a simulation.
public enum SimulationReport {
    /// `{"strategies": {NAME: {"domains": {...}, "mean": x, "rounds": R, "wall_s": t, "dropouts": [...]}}, "config": {...}}`.
    public static func summaryJSON(_ results: [SimulationResult], skipped: [String: String], config: [String: String]) throws -> Data {
        var strategies: [String: Any] = [:]
        for r in results {
            let acc = r.finalAccuracy
            strategies[r.plan.strategy.rawValue] = [
                "domains": acc.mapValues { Double($0) },
                "mean": acc.isEmpty ? 0 : Double(acc.values.reduce(0, +)) / Double(acc.count),
                "rounds": r.metrics.count,
                "wall_s": (r.wallSeconds * 10).rounded() / 10,
                "dropouts": r.dropouts.map { ["client": $0.client, "at_s": ($0.atSeconds * 10).rounded() / 10, "after_round": $0.afterRound] as [String: Any] },
                "norm": r.plan.model.norm.rawValue,
                "clients": r.plan.clients.count,
                "peak_rss_mb": (r.peakRSSMB * 10).rounded() / 10,
                "server_peak_rss_mb": (r.serverPeakRSSMB * 10).rounded() / 10,
            ] as [String: Any]
        }
        var root: [String: Any] = ["strategies": strategies, "config": config]
        if !skipped.isEmpty { root["skipped"] = skipped }
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    /// One row per strategy, one column per domain, plus the mean.
    public static func table(_ results: [SimulationResult]) -> String {
        let domains = results.first?.plan.domains ?? []
        let w = max(8, domains.map(\.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        var lines = [pad("strategy", 10) + domains.map { pad($0, w + 1) }.joined() + "mean"]
        for r in results {
            let acc = r.finalAccuracy
            let mean = acc.isEmpty ? 0 : acc.values.reduce(0, +) / Float(acc.count)
            lines.append(pad(r.plan.strategy.rawValue, 10) + domains.map { pad(acc[$0].map { String(format: "%.4f", $0) } ?? "-", w + 1) }.joined()
                         + String(format: "%.4f", mean))
        }
        return lines.joined(separator: "\n")
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    /// An inline SVG line chart of accuracy (0–1) per round, one line per series.
    static func chart(title: String, series: [(String, [(Double, Double)])], rounds: Int) -> String {
        let width = 520.0, height = 260.0, left = 44.0, right = 130.0, top = 28.0, bottom = 32.0
        let pw = width - left - right, ph = height - top - bottom
        func x(_ r: Double) -> Double { left + (rounds <= 1 ? 0 : (r - 1) / Double(rounds - 1) * pw) }
        func y(_ a: Double) -> Double { top + (1 - a) * ph }
        var svg = "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\">"
        svg += "<text x=\"\(left)\" y=\"18\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>"
        for i in 0...5 {
            let a = Double(i) / 5
            svg += "<line x1=\"\(left)\" x2=\"\(left + pw)\" y1=\"\(y(a))\" y2=\"\(y(a))\" stroke=\"#ddd\"/>"
            svg += "<text x=\"\(left - 6)\" y=\"\(y(a) + 4)\" font-size=\"10\" text-anchor=\"end\">\(String(format: "%.1f", a))</text>"
        }
        svg += "<text x=\"\(left + pw / 2)\" y=\"\(height - 6)\" font-size=\"11\" text-anchor=\"middle\">round (1–\(rounds))</text>"
        for (i, (name, points)) in series.enumerated() {
            let color = palette[i % palette.count]
            let path = points.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
            svg += "<polyline class=\"series\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>"
            svg += "<text x=\"\(left + pw + 8)\" y=\"\(top + 14 + Double(i) * 16)\" font-size=\"11\" fill=\"\(color)\">\(escape(name))</text>"
        }
        return svg + "</svg>"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// The self-contained HTML report (no network): charts, final table, configuration, sample grid.
    public static func html(_ results: [SimulationResult], skipped: [String: String], config: [String: String], samples: [Dataset]) -> String {
        let rounds = results.map(\.plan.rounds).max() ?? 1
        var body = "<h1>FedKit simulation</h1>"
        // Final table.
        let domains = results.first?.plan.domains ?? []
        body += "<h2>Final test accuracy per domain</h2><table><tr><th>strategy</th>" + domains.map { "<th>\(escape($0))</th>" }.joined() + "<th>mean</th><th>rounds</th><th>wall time</th></tr>"
        let best = results.max { a, b in mean(a) < mean(b) }?.plan.strategy
        for r in results {
            let acc = r.finalAccuracy
            body += "<tr\(r.plan.strategy == best ? " class=\"best\"" : "")><td>\(r.plan.strategy.rawValue) <small>(norm \(r.plan.model.norm.rawValue))</small></td>"
            body += domains.map { "<td>\(acc[$0].map { String(format: "%.2f%%", $0 * 100) } ?? "–")</td>" }.joined()
            body += "<td><b>\(String(format: "%.2f%%", mean(r) * 100))</b></td><td>\(r.metrics.count)</td><td>\(String(format: "%.0f s", r.wallSeconds))</td></tr>"
        }
        body += "</table>"
        for (s, reason) in skipped.sorted(by: { $0.key < $1.key }) { body += "<p class=\"skipped\">\(escape(s)) not run: \(escape(reason))</p>" }
        for r in results where !r.dropouts.isEmpty {
            body += "<p class=\"dropouts\">\(r.plan.strategy.rawValue): " + r.dropouts.map { "client \(escape($0.client)) dropped out after round \($0.afterRound) (\(String(format: "%.0f", $0.atSeconds)) s into the run)" }.joined(separator: "; ") + "</p>"
        }
        // Charts.
        body += "<h2>Mean test accuracy per round</h2>"
        body += chart(title: "mean over domains", series: results.map { r in
            (r.plan.strategy.rawValue, r.metrics.compactMap { m in m.meanAccuracy.map { (Double(m.round), Double($0)) } })
        }, rounds: rounds)
        body += "<h2>Test accuracy per domain and round</h2><div class=\"charts\">"
        for r in results {
            let series = domains.map { d in
                (d, r.metrics.compactMap { m -> (Double, Double)? in
                    let e = m.evaluation.filter { $0.domain == d }
                    return e.isEmpty ? nil : (Double(m.round), Double(e.map(\.accuracy).reduce(0, +)) / Double(e.count))
                })
            }
            body += chart(title: r.plan.strategy.rawValue, series: series, rounds: rounds)
        }
        body += "</div>"
        // Samples.
        if !samples.isEmpty {
            let grid = SampleGrid.render(samples, perClass: 2, scale: 2)
            let png = Data(PNG.encodeRGB(width: grid.width, height: grid.height, rgb: grid.rgb)).base64EncodedString()
            body += "<h2>Samples of each domain</h2><p>One row per domain (\(samples.map { escape($0.domain) }.joined(separator: ", "))), two samples of each digit.</p>"
            body += "<img class=\"samples\" alt=\"sample grid\" src=\"data:image/png;base64,\(png)\">"
        }
        body += "<h2>Configuration</h2><table>" + config.sorted { $0.key < $1.key }.map { "<tr><td>\(escape($0.key))</td><td>\(escape($0.value))</td></tr>" }.joined() + "</table>"
        let style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}td:first-child,th:first-child{text-align:left}tr.best{background:#eef8ee}.charts svg{margin:0 1em 1em 0}.skipped,.dropouts{color:#a33}img.samples{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}"
        return "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>FedKit simulation report</title><style>\(style)</style></head><body>\(body)</body></html>\n"
    }

    static func mean(_ r: SimulationResult) -> Float {
        let acc = r.finalAccuracy
        return acc.isEmpty ? 0 : acc.values.reduce(0, +) / Float(acc.count)
    }
}
