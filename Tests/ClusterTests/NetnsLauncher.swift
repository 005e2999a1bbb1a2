import Foundation
import XCTest

/// `cluster/netns/launch.sh` and the daemons it starts, as the cluster tests use them:
/// where they are, running the launcher in the foreground or the background, and looking
/// at the namespaces it leaves.
enum NetnsLauncher {
    /// The repository root, from this file's path.
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static var script: String { "\(repository)/cluster/netns/launch.sh" }

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

    /// Why a cluster test cannot start although namespaces are available.
    struct SetupError: Error, CustomStringConvertible {
        var description: String
    }

    /// Skips the calling test where namespaces cannot exist (not root, or no working `ip netns`).
    /// - Returns: the directory holding `fed-server` and `fed-client`.
    /// - Throws: `XCTSkip` naming the reason namespaces are unavailable; `SetupError` when
    ///   `launch.sh --check` fails otherwise or the daemons are not built.
    static func requireNamespacesAndDaemons(for purpose: String) throws -> String {
        let check = try run(["--check"], timeout: 30)
        if check.status == 3 {
            throw XCTSkip("network namespaces are unavailable here, so \(purpose) cannot run: \(check.output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        guard check.status == 0 else { throw SetupError(description: "launch.sh --check failed with status \(check.status): \(check.output)") }
        let bin = binaries
        for exe in ["fed-server", "fed-client"] where !FileManager.default.isExecutableFile(atPath: "\(bin)/\(exe)") {
            throw SetupError(description: "\(bin)/\(exe) is missing: build the daemons first (swift build --build-tests) or set FEDKIT_BIN")
        }
        return bin
    }

    /// How a run of the launcher ended.
    struct Outcome {
        var status: Int32
        var output: String
        /// The launcher was still running at the timeout and was stopped.
        var timedOut: Bool
    }

    /// A launcher started in the background; its output goes to a temporary file.
    final class Running {
        let process = Process()
        private let log: URL
        private let handle: FileHandle

        init(_ arguments: [String]) throws {
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [NetnsLauncher.script] + arguments
            log = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-netns-\(getpid())-\(UUID().uuidString).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            handle = try FileHandle(forWritingTo: log)
            process.standardOutput = handle
            process.standardError = handle
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }

        var isRunning: Bool { process.isRunning }

        /// Waits for the launcher to exit; after `timeout` seconds sends it SIGTERM (it then stops
        /// its daemons and deletes its namespaces), and SIGKILL 15 s later.
        func wait(timeout: TimeInterval) throws -> Outcome {
            let deadline = Date().addingTimeInterval(timeout)
            while process.isRunning && Date() < deadline { usleep(100_000) }
            var timedOut = false
            if process.isRunning {
                timedOut = true
                process.terminate()
                let grace = Date().addingTimeInterval(15)
                while process.isRunning && Date() < grace { usleep(100_000) }
                if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            }
            process.waitUntilExit()
            try handle.close()
            let output = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
            try? FileManager.default.removeItem(at: log)
            return Outcome(status: process.terminationStatus, output: output, timedOut: timedOut)
        }
    }

    /// Runs `bash launch.sh ARGS`, stopping it after `timeout` seconds.
    static func run(_ arguments: [String], timeout: TimeInterval) throws -> Outcome {
        try Running(arguments).wait(timeout: timeout)
    }

    /// Runs a command line with `/bin/sh -c`; returns its status and its output (both streams).
    @discardableResult
    static func shell(_ command: String) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command + " 2>&1"]
        let pipe = Pipe()
        p.standardOutput = pipe
        guard (try? p.run()) != nil else { return (-1, "cannot run /bin/sh") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// Names of the network namespaces whose name starts with `prefix-`.
    static func namespaces(prefix: String) -> [String] {
        shell("ip netns list").output.split(separator: "\n")
            .compactMap { $0.split(separator: " ").first.map(String.init) }
            .filter { $0.hasPrefix(prefix + "-") }
    }

    /// The last `lines` lines of a file, or a note that it is missing.
    static func tail(_ path: String, lines: Int = 30) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? "(no \(path))"
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}
