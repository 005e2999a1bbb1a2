import Foundation
import XCTest

/// End-to-end runs of `fed-sim`: real fed-server and fed-client processes over mutual TLS on loopback.
final class SimulationTests: XCTestCase {
    /// Directory of the built executables (the test bundle sits beside them).
    var binaries: URL { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent() }

    func executable(_ name: String) throws -> String {
        let path = binaries.appendingPathComponent(name).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw XCTSkip("\(path) is not built; run `swift build` before the tests") as Error
        }
        return path
    }

    func temporaryDirectory(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: dir)
        return dir
    }

    @discardableResult
    func run(_ path: String, _ arguments: [String], log: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        FileManager.default.createFile(atPath: log, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardOutput = h
        p.standardError = h
        try p.run()
        return p
    }

    /// Values the daemons would refuse are refused by fed-sim itself, before any process
    /// starts or any file is written, naming the flag, the value and what is expected.
    func testBadValuesAreRefusedBeforeAnyProcessStarts() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("bad-values")
        for (arguments, message) in [
            (["--fraction", "1.5"], "--fraction (1.5) must be in (0, 1]"),
            (["--widths", "1,2"], "--widths (1,2) must be 5 comma-separated positive integers for --model digit-cnn"),
            (["--round-timeout", "0"], "--round-timeout (0.0) must be a positive number of seconds"),
            (["--lr=-1"], "--lr (-1.0) must be a positive number"),
        ] {
            let log = out + ".log"
            let p = try run(sim, ["run"] + arguments + ["--out", out], log: log)
            p.waitUntilExit()
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            XCTAssertNotEqual(p.terminationStatus, 0, "\(arguments)")
            XCTAssertTrue(text.contains(message), text)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out), "\(arguments) created \(out)")
            try? FileManager.default.removeItem(atPath: log)
        }
    }

    /// Processes whose command line mentions `marker` (to find children and prove none is left).
    func processes(mentioning marker: String) -> [(pid: Int32, command: String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { e -> (Int32, String)? in
            guard let pid = Int32(e), pid != getpid(),
                  let raw = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { return nil }
            let cmd = String(decoding: raw.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return cmd.contains(marker) && !cmd.contains("SimulationTests") ? (pid, cmd) : nil
        }
    }

    func summary(_ out: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: "\(out)/summary.json"))
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    func testCompareQuickPresetReportsEveryDomainAndStrategyAboveChance() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("compare")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try run(sim, ["compare", "--preset", "digits5-quick", "--rounds", "3", "--out", out], log: out + ".log")
        p.waitUntilExit()
        let log = (try? String(contentsOfFile: out + ".log", encoding: .utf8)) ?? ""
        XCTAssertEqual(p.terminationStatus, 0, log)
        let strategies = try XCTUnwrap(try summary(out)["strategies"] as? [String: [String: Any]])
        XCTAssertEqual(Set(strategies.keys), ["fedavg", "fedbn", "fedwon"])
        for (name, s) in strategies {
            let domains = try XCTUnwrap(s["domains"] as? [String: Double], name)
            XCTAssertEqual(Set(domains.keys), ["mnist", "usps", "svhn", "synth", "mnistm"], name)
            let mean = try XCTUnwrap(s["mean"] as? Double)
            XCTAssertGreaterThan(mean, 0.3, "\(name): mean accuracy \(mean) is not well above chance (0.1)")
            XCTAssertEqual(s["rounds"] as? Int, 3)
        }
        XCTAssertTrue(log.contains("strategy") && log.contains("mean"), "no comparison table printed:\n\(log)")
        XCTAssertTrue(processes(mentioning: out).isEmpty, "children left running: \(processes(mentioning: out))")
        try checkReportInBrowser("\(out)/report.html", strategies: 3)
    }

    /// Opens report.html in headless Chromium (no network) and checks the charts are in the rendered page.
    func checkReportInBrowser(_ path: String, strategies: Int) throws {
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let chromium else {
            XCTFail("chromium is not installed; run `bash scripts/setup.sh --test` (Debian package chromium)")
            return
        }
        let dom = path + ".dom"
        let p = try run(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", "file://\(path)"], log: dom)
        p.waitUntilExit()
        let html = try String(contentsOfFile: dom, encoding: .utf8)
        let charts = html.components(separatedBy: "<svg class=\"chart\"").count - 1
        XCTAssertEqual(charts, 1 + strategies, "charts in the rendered report")
        XCTAssertGreaterThanOrEqual(html.components(separatedBy: "<polyline").count - 1, strategies * 6)
        XCTAssertTrue(html.contains("data:image/png;base64,"), "sample grid missing")
        for attribute in ["src=\"http", "href=\"http", "url(http", "@import"] {
            XCTAssertFalse(html.contains(attribute), "the report must not load anything from the network (\(attribute))")
        }
    }

    func testKillingOneClientMidRunStillFinishesAndIsReported() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("dropout")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try run(sim, ["run", "--strategy", "fedavg", "--preset", "digits5-quick", "--rounds", "5", "--train-count", "1000",
                              "--round-timeout", "30", "--out", out], log: out + ".log")
        // Wait for the first round, then kill the svhn client.
        let metrics = "\(out)/fedavg/server/metrics.jsonl"
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline && !FileManager.default.fileExists(atPath: metrics) { usleep(100_000) }
        let victims = processes(mentioning: "\(out)/fedavg/clients/svhn-0")
        XCTAssertEqual(victims.count, 1, "\(victims)")
        for v in victims { kill(v.pid, SIGKILL) }
        p.waitUntilExit()
        let log = (try? String(contentsOfFile: out + ".log", encoding: .utf8)) ?? ""
        XCTAssertEqual(p.terminationStatus, 0, log)
        let fedavg = try XCTUnwrap((try summary(out)["strategies"] as? [String: [String: Any]])?["fedavg"])
        let dropouts = try XCTUnwrap(fedavg["dropouts"] as? [[String: Any]])
        XCTAssertEqual(dropouts.map { $0["client"] as? String }, ["svhn-0"])
        XCTAssertEqual(fedavg["rounds"] as? Int, 5)
        XCTAssertTrue(log.contains("svhn-0 exited"), log)
        let html = try String(contentsOfFile: "\(out)/report.html", encoding: .utf8)
        XCTAssertTrue(html.contains("client svhn-0 dropped out after round"), "the report does not name the dropout")
        XCTAssertTrue(processes(mentioning: out).isEmpty, "children left running: \(processes(mentioning: out))")
    }

    func testInterruptStopsEveryChild() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("interrupt")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try run(sim, ["run", "--strategy", "fedwon", "--preset", "digits5-quick", "--rounds", "50", "--out", out], log: out + ".log")
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline && processes(mentioning: "\(out)/fedwon/clients").count < 5 { usleep(100_000) }
        XCTAssertEqual(processes(mentioning: "\(out)/fedwon/clients").count, 5)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 130)
        usleep(200_000)
        XCTAssertTrue(processes(mentioning: out).isEmpty, "children left running after Ctrl-C: \(processes(mentioning: out))")
    }

    func testBatchSizeOneSkipsBatchNormStrategiesWithAReason() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("batch1")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try run(sim, ["compare", "--strategies", "fedbn,fedwon", "--batch", "1", "--lr", "0.01", "--rounds", "1",
                              "--train-count", "500", "--test-count", "100", "--out", out], log: out + ".log")
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, (try? String(contentsOfFile: out + ".log", encoding: .utf8)) ?? "")
        let s = try summary(out)
        XCTAssertNotNil((s["strategies"] as? [String: Any])?["fedwon"])
        let skipped = try XCTUnwrap(s["skipped"] as? [String: String])
        XCTAssertTrue(skipped["fedbn"]?.contains("BatchNorm") ?? false, "\(skipped)")
    }

    /// `--seeds 1,2,3`: each seed's runs in OUT/seed-N, and at the top their mean and sample
    /// standard deviation, computed from the seeds' own summaries.
    func testSeveralSeedsReportMeanAndStandardDeviation() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("seeds")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try run(sim, ["compare", "--strategies", "fedavg,fedwon", "--seeds", "1,2,3", "--rounds", "2", "--widths", "4,4,8,16,8",
                              "--domains", "mnist,usps", "--train-count", "400", "--data-fraction", "0.5", "--test-count", "100", "--out", out],
                      log: out + ".log")
        p.waitUntilExit()
        let log = (try? String(contentsOfFile: out + ".log", encoding: .utf8)) ?? ""
        XCTAssertEqual(p.terminationStatus, 0, log)
        XCTAssertTrue(log.contains("mean ± standard deviation over seeds 1,2,3"), log)
        let top = try summary(out)
        XCTAssertEqual(top["seeds"] as? [Int], [1, 2, 3])
        let strategies = try XCTUnwrap(top["strategies"] as? [String: [String: Any]])
        XCTAssertEqual(Set(strategies.keys), ["fedavg", "fedwon"])
        for (name, s) in strategies {
            // Each seed's own summary, as a single-seed run writes it.
            let perSeed = try [1, 2, 3].map { seed -> Double in
                let one = try XCTUnwrap((try summary("\(out)/seed-\(seed)"))["strategies"] as? [String: [String: Any]])
                XCTAssertEqual((try summary("\(out)/seed-\(seed)"))["config"].flatMap { ($0 as? [String: String])?["seed"] }, String(seed))
                return try XCTUnwrap(one[name]?["mean"] as? Double)
            }
            XCTAssertEqual(s["per_seed"] as? [String: Double], ["1": perSeed[0], "2": perSeed[1], "3": perSeed[2]], name)
            let mean = perSeed.reduce(0, +) / 3
            let std = (perSeed.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 2).squareRoot()
            XCTAssertEqual(try XCTUnwrap(s["mean"] as? Double), mean, accuracy: 1e-12, name)
            XCTAssertEqual(try XCTUnwrap(s["mean_std"] as? Double), std, accuracy: 1e-12, name)
            XCTAssertEqual(Set(try XCTUnwrap(s["domains_std"] as? [String: Double]).keys), ["mnist", "usps"])
        }
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        for seed in 1...3 { XCTAssertTrue(html.contains("href=\"seed-\(seed)/report.html\""), "no link to seed \(seed)") }
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/seed-2/report.html"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/seed-3/fedwon/server/final-model.fkt"))
    }

    func testProcessesHostingSeveralClientsRunTheCrossDeviceSetting() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("hosted")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let p = try run(sim, ["run", "--strategy", "fedbn", "--partition", "domain:2", "--clients-per-process", "5", "--rounds", "2",
                              "--train-count", "1000", "--test-count", "100", "--out", out], log: out + ".log")
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, (try? String(contentsOfFile: out + ".log", encoding: .utf8)) ?? "")
        let fedbn = try XCTUnwrap((try summary(out)["strategies"] as? [String: [String: Any]])?["fedbn"])
        XCTAssertEqual(fedbn["clients"] as? Int, 10)
        XCTAssertEqual((fedbn["domains"] as? [String: Double])?.count, 5)
        XCTAssertGreaterThan(fedbn["peak_rss_mb"] as? Double ?? 0, 0)
        // Two hosting processes, not ten; every client kept its own state directory.
        let logs = try FileManager.default.contentsOfDirectory(atPath: "\(out)/fedbn").filter { $0.hasPrefix("host-") }
        XCTAssertEqual(logs.sorted(), ["host-0.log", "host-1.log"])
        let states = try FileManager.default.contentsOfDirectory(atPath: "\(out)/fedbn/clients")
        XCTAssertEqual(states.count, 10)
        for name in states { XCTAssertTrue(FileManager.default.fileExists(atPath: "\(out)/fedbn/clients/\(name)/state.fkt"), name) }
        let metrics = try String(contentsOfFile: "\(out)/fedbn/server/metrics.jsonl", encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"svhn-1\""), "svhn-1 did not take part")
    }

    /// 100 clients, each its own `fed-client` process, through three rounds of a tiny model:
    /// every round hears from all 100, and the run ends cleanly. Prints the wall time and the
    /// peak memory of all processes together (for docs/faults.md).
    func testAHundredClientProcessesAnswerEveryRound() throws {
        let sim = try executable("fed-sim")
        let out = temporaryDirectory("hundred")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let rounds = 3
        let started = Date()
        let p = try run(sim, ["run", "--strategy", "fedbn", "--partition", "domain:20", "--clients-per-process", "1",
                              "--rounds", String(rounds), "--widths", "4,4,8,16,8", "--train-count", "400", "--data-fraction", "1",
                              "--test-count", "40", "--batch", "8", "--round-timeout", "120", "--out", out], log: out + ".log")
        let deadline = Date().addingTimeInterval(300)
        while p.isRunning && Date() < deadline { usleep(200_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGINT)
            p.waitUntilExit()
            XCTFail("fed-sim did not finish in 300 s:\n" + ((try? String(contentsOfFile: out + ".log", encoding: .utf8)) ?? ""))
            return
        }
        let wall = Date().timeIntervalSince(started)
        let log = (try? String(contentsOfFile: out + ".log", encoding: .utf8)) ?? ""
        XCTAssertEqual(p.terminationStatus, 0, log)

        let lines = try String(contentsOfFile: "\(out)/fedbn/server/metrics.jsonl", encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, rounds, "rounds recorded")
        for line in lines {
            let m = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let round = m["round"] as? Int ?? -1
            XCTAssertEqual((m["selected"] as? [String])?.count, 100, "round \(round): clients sampled")
            XCTAssertEqual((m["fit"] as? [[String: Any]])?.count, 100, "round \(round): clients that answered")
            XCTAssertEqual((m["dropped"] as? [String])?.count, 0, "round \(round): \(m["dropped"] ?? [])")
            XCTAssertEqual((m["evaluation"] as? [[String: Any]])?.count, 100, "round \(round): clients that evaluated")
        }
        let fedbn = try XCTUnwrap((try summary(out)["strategies"] as? [String: [String: Any]])?["fedbn"])
        XCTAssertEqual(fedbn["clients"] as? Int, 100)
        XCTAssertEqual((fedbn["dropouts"] as? [Any])?.count, 0)
        XCTAssertTrue(processes(mentioning: out).isEmpty, "children left running: \(processes(mentioning: out))")
        let timings = (try? String(contentsOfFile: "\(out)/fedbn/server/timings.jsonl", encoding: .utf8)) ?? ""
        print(String(format: "100 fed-client processes, %d rounds: %.1f s wall (fed-sim's own %.1f s), peak RSS %.0f MB summed over the 101 processes (shared pages of the executables counted in each), %.0f MB for the server",
                     rounds, wall, fedbn["wall_s"] as? Double ?? 0, fedbn["peak_rss_mb"] as? Double ?? 0, fedbn["server_peak_rss_mb"] as? Double ?? 0))
        print("per-round timings:\n" + timings)
    }
}
