import Foundation
import XCTest

/// Runs a real federation across Linux network namespaces with `cluster/netns/launch.sh`:
/// `fed-server` in one namespace, two `fed-client`s in two others, joined by veth links
/// and a bridge, speaking mutual TLS over private addresses that exist only inside
/// those namespaces.
///
/// Needs root and iproute2's `ip netns`; anywhere else the test is skipped and says why.
/// It needs the `fed-server` and `fed-client` executables next to the test bundle
/// (`swift build --build-tests` builds them) or in `FEDKIT_BIN`.
final class NetnsFederationTests: XCTestCase {
    /// The repository root, from this file's path.
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static var launcher: String { "\(repository)/cluster/netns/launch.sh" }

    /// Directory holding the daemons: `FEDKIT_BIN`, else the build products directory this
    /// test runs from (the first ancestor of the test executable holding `fed-server`),
    /// else `.build/debug`.
    static var binaries: String {
        if let dir = ProcessInfo.processInfo.environment["FEDKIT_BIN"] { return dir }
        var dir = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 where dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("fed-server").path) { return dir.path }
            dir = dir.deletingLastPathComponent()
        }
        return "\(repository)/.build/debug"
    }

    /// Runs `bash launch.sh ARGS`, killing it after `timeout` seconds; returns its status and output.
    func runLauncher(_ arguments: [String], timeout: TimeInterval) throws -> (status: Int32, output: String, timedOut: Bool) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [Self.launcher] + arguments
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-netns-\(getpid())-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: log) }
        let handle = try FileHandle(forWritingTo: log)
        p.standardOutput = handle
        p.standardError = handle
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(100_000) }
        var timedOut = false
        if p.isRunning {
            timedOut = true
            p.terminate()  // SIGTERM: the launcher stops its daemons and deletes its namespaces
            let grace = Date().addingTimeInterval(15)
            while p.isRunning && Date() < grace { usleep(100_000) }
            if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        }
        p.waitUntilExit()
        try handle.close()
        let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        return (p.terminationStatus, output, timedOut)
    }

    /// Names of the network namespaces whose name starts with `prefix-`.
    func namespaces(prefix: String) -> [String] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ip netns list 2>/dev/null"]
        let pipe = Pipe()
        p.standardOutput = pipe
        guard (try? p.run()) != nil else { return [] }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(prefix + "-") }
    }

    func testTwoRoundFederationAcrossThreeNamespaces() throws {
        // Skip only where namespaces cannot exist: not root, or no working `ip netns`.
        let check = try runLauncher(["--check"], timeout: 30)
        if check.status == 3 {
            throw XCTSkip("network namespaces are unavailable here, so the multi-host federation test cannot run: \(check.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        XCTAssertEqual(check.status, 0, "launch.sh --check failed: \(check.output)")

        let bin = Self.binaries
        for exe in ["fed-server", "fed-client"] {
            guard FileManager.default.isExecutableFile(atPath: "\(bin)/\(exe)") else {
                return XCTFail("\(bin)/\(exe) is missing: build the daemons first (swift build --build-tests) or set FEDKIT_BIN")
            }
        }

        let prefix = "fkt\(getpid() % 100_000)"
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-netns-\(prefix)-\(UUID().uuidString)").path
        defer {
            // Safety net: whatever happened, no namespace of this test survives it.
            _ = try? runLauncher(["--clean", prefix], timeout: 30)
            try? FileManager.default.removeItem(atPath: out)
        }
        let run = try runLauncher([
            "--clients", "2", "--domains", "mnist,usps", "--rounds", "2", "--strategy", "fedwon",
            "--prefix", prefix, "--port", "7443", "--bin", bin, "--out", out, "--timeout", "90",
            "--server-arg", "--connect-timeout", "--server-arg", "60", "--server-arg", "--round-timeout", "--server-arg", "60",
            "--server-arg", "--batch-size", "--server-arg", "16",
            "--client-arg", "--train-count", "--client-arg", "100", "--client-arg", "--test-count", "--client-arg", "50",
            "--", "--widths", "4,4,8,16,8",
        ], timeout: 110)

        XCTAssertFalse(run.timedOut, "the federation did not finish in time:\n\(run.output)")
        XCTAssertEqual(run.status, 0, "launch.sh failed:\n\(run.output)\n--- server.log ---\n\(tail("\(out)/server.log"))")
        XCTAssertEqual(namespaces(prefix: prefix), [], "namespaces left behind by launch.sh")

        // The clients really were on other hosts: the server saw their namespace addresses.
        let network = (try? String(contentsOfFile: "\(out)/network.txt", encoding: .utf8)) ?? ""
        XCTAssertTrue(network.contains("10.77.0.1/24") && network.contains("10.77.0.2/24") && network.contains("10.77.0.3/24"),
                      "unexpected addresses:\n\(network)")

        let text = try String(contentsOfFile: "\(out)/server/metrics.jsonl", encoding: .utf8)
        let rounds = try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(rounds.count, 2, "metrics.jsonl should hold 2 rounds:\n\(text)")
        for (i, round) in rounds.enumerated() {
            XCTAssertEqual(round["round"] as? Int, i + 1)
            let evaluation = round["evaluation"] as? [[String: Any]] ?? []
            let evaluated = Set(evaluation.compactMap { $0["client"] as? String })
            XCTAssertEqual(evaluated, ["mnist-0", "usps-0"], "round \(i + 1) should evaluate both clients:\n\(text)")
            for e in evaluation {
                let accuracy = (e["accuracy"] as? Double) ?? -1
                XCTAssertTrue((0...1).contains(accuracy), "accuracy \(accuracy) out of [0, 1] in round \(i + 1)")
            }
            let fit = round["fit"] as? [[String: Any]] ?? []
            XCTAssertEqual(fit.count, 2, "round \(i + 1) should aggregate both clients' updates:\n\(text)")
        }
    }

    func tail(_ path: String, lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(no \(path))"
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}
