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
        body += skippedNotes(skipped)
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
        body += configurationTable(config)
        return "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>FedKit simulation report</title><style>\(style)</style></head><body>\(body)</body></html>\n"
    }

    static let style = "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right;white-space:nowrap}td:first-child,th:first-child{text-align:left}tr.best{background:#eef8ee}.charts svg{margin:0 1em 1em 0}.skipped,.dropouts{color:#a33}img.samples{image-rendering:pixelated;border:1px solid #ccc;max-width:100%}"

    static func skippedNotes(_ skipped: [String: String]) -> String {
        skipped.sorted { $0.key < $1.key }.map { "<p class=\"skipped\">\(escape($0.key)) not run: \(escape($0.value))</p>" }.joined()
    }

    static func configurationTable(_ config: [String: String]) -> String {
        "<h2>Configuration</h2><table>" + config.sorted { $0.key < $1.key }.map { "<tr><td>\(escape($0.key))</td><td>\(escape($0.value))</td></tr>" }.joined() + "</table>"
    }

    static func mean(_ r: SimulationResult) -> Float {
        let acc = r.finalAccuracy
        return acc.isEmpty ? 0 : acc.values.reduce(0, +) / Float(acc.count)
    }
}

// MARK: Several seeds

extension SimulationReport {
    /// One seed's runs of every strategy.
    public struct SeedRun: Sendable {
        public var seed: UInt64
        public var results: [SimulationResult]
        public init(seed: UInt64, results: [SimulationResult]) {
            self.seed = seed
            self.results = results
        }
    }

    /// A strategy's final accuracies over the seeds.
    struct Aggregate {
        var strategy: String
        var norm: String
        /// Per domain: mean and standard deviation over seeds.
        var domains: [String: (mean: Double, std: Double)]
        /// The mean over domains: its mean and standard deviation over seeds.
        var mean: (mean: Double, std: Double)
        var perSeed: [(seed: UInt64, mean: Double)]
        /// Mean test accuracy per round, averaged over the seeds (rounds every seed evaluated).
        var curve: [(Double, Double)]
    }

    /// Mean and sample standard deviation (n − 1; 0 for a single value).
    static func meanAndStd(_ v: [Double]) -> (mean: Double, std: Double) {
        guard !v.isEmpty else { return (0, 0) }
        let m = v.reduce(0, +) / Double(v.count)
        guard v.count > 1 else { return (m, 0) }
        return (m, (v.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(v.count - 1)).squareRoot())
    }

    /// Every strategy that ran under every seed, in the order of the first seed's runs.
    static func aggregate(_ runs: [SeedRun]) -> [Aggregate] {
        guard let first = runs.first else { return [] }
        return first.results.compactMap { r0 in
            let name = r0.plan.strategy.rawValue
            let results = runs.compactMap { run in run.results.first { $0.plan.strategy.rawValue == name }.map { (run.seed, $0) } }
            guard results.count == runs.count else { return nil }
            let domains = r0.plan.domains
            var perDomain: [String: (Double, Double)] = [:]
            for d in domains { perDomain[d] = meanAndStd(results.compactMap { $0.1.finalAccuracy[d].map(Double.init) }) }
            let means = results.map { (seed: $0.0, mean: Double(mean($0.1))) }
            var curve: [(Double, Double)] = []
            for round in 1...max(1, r0.plan.rounds) {
                let values = results.compactMap { $0.1.metrics.first { $0.round == UInt64(round) }?.meanAccuracy }
                if values.count == results.count { curve.append((Double(round), Double(values.reduce(0, +)) / Double(values.count))) }
            }
            return Aggregate(strategy: name, norm: r0.plan.model.norm.rawValue, domains: perDomain,
                             mean: meanAndStd(means.map(\.mean)), perSeed: means, curve: curve)
        }
    }

    /// `{"seeds": [...], "strategies": {NAME: {"domains": {...}, "domains_std": {...}, "mean": m, "mean_std": s, "per_seed": {"1": m1, ...}}}, "config": {...}}`.
    public static func summaryJSON(seeds runs: [SeedRun], skipped: [String: String], config: [String: String]) throws -> Data {
        var strategies: [String: Any] = [:]
        for a in aggregate(runs) {
            strategies[a.strategy] = [
                "domains": a.domains.mapValues { $0.mean },
                "domains_std": a.domains.mapValues { $0.std },
                "mean": a.mean.mean,
                "mean_std": a.mean.std,
                "per_seed": Dictionary(uniqueKeysWithValues: a.perSeed.map { (String($0.seed), $0.mean) }),
                "norm": a.norm,
            ] as [String: Any]
        }
        var root: [String: Any] = ["seeds": runs.map(\.seed), "strategies": strategies, "config": config]
        if !skipped.isEmpty { root["skipped"] = skipped }
        return try JSONSerialization.data(withJSONObject: root, options: [.prettyPrinted, .sortedKeys])
    }

    /// One row per strategy: per domain and for the mean, "mean ± std" over the seeds.
    public static func table(seeds runs: [SeedRun]) -> String {
        let aggregates = aggregate(runs)
        let domains = runs.first?.results.first?.plan.domains ?? []
        let w = max(16, domains.map(\.count).max() ?? 0)
        func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
        func cell(_ v: (mean: Double, std: Double)?) -> String { v.map { String(format: "%.4f ± %.4f", $0.mean, $0.std) } ?? "-" }
        var lines = [pad("strategy", 10) + domains.map { pad($0, w + 1) }.joined() + "mean"]
        for a in aggregates {
            lines.append(pad(a.strategy, 10) + domains.map { pad(cell(a.domains[$0]), w + 1) }.joined() + cell(a.mean))
        }
        return lines.joined(separator: "\n")
    }

    /// The report over seeds: the table of means ± standard deviations, each seed's mean, the
    /// mean accuracy per round averaged over seeds, and links to each seed's own report.
    public static func html(seeds runs: [SeedRun], skipped: [String: String], config: [String: String]) -> String {
        let aggregates = aggregate(runs)
        let domains = runs.first?.results.first?.plan.domains ?? []
        let rounds = runs.flatMap(\.results).map(\.plan.rounds).max() ?? 1
        func pct(_ v: (mean: Double, std: Double)?) -> String { v.map { String(format: "%.2f%% <small>± %.2f</small>", $0.mean * 100, $0.std * 100) } ?? "–" }
        let best = aggregates.max { $0.mean.mean < $1.mean.mean }?.strategy
        var body = "<h1>FedKit simulation</h1><p>\(runs.count) seeds (\(runs.map { String($0.seed) }.joined(separator: ", "))): mean ± standard deviation over seeds of the final test accuracy.</p>"
        body += "<h2>Final test accuracy per domain</h2><table><tr><th>strategy</th>" + domains.map { "<th>\(escape($0))</th>" }.joined() + "<th>mean</th>"
            + runs.map { "<th>seed \($0.seed)</th>" }.joined() + "</tr>"
        for a in aggregates {
            body += "<tr\(a.strategy == best ? " class=\"best\"" : "")><td>\(escape(a.strategy)) <small>(norm \(escape(a.norm)))</small></td>"
            body += domains.map { "<td>\(pct(a.domains[$0]))</td>" }.joined() + "<td><b>\(pct(a.mean))</b></td>"
            body += a.perSeed.map { "<td>\(String(format: "%.2f%%", $0.mean * 100))</td>" }.joined() + "</tr>"
        }
        body += "</table>"
        body += skippedNotes(skipped)
        body += "<h2>Mean test accuracy per round, averaged over seeds</h2>"
        body += chart(title: "mean over domains and seeds", series: aggregates.map { ($0.strategy, $0.curve) }, rounds: rounds)
        body += "<h2>Each seed</h2><ul>" + runs.map { "<li><a href=\"seed-\($0.seed)/report.html\">seed \($0.seed)</a></li>" }.joined() + "</ul>"
        body += configurationTable(config)
        return "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>FedKit simulation report</title><style>\(style)</style></head><body>\(body)</body></html>\n"
    }
}
