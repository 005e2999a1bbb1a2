import FedKitCLI
import Foundation
import NN
import XCTest
@testable import Federated

/// Finds the `fed-server` and `fed-client` executables beside the test bundle.
enum Binaries {
    /// The build directory holding both daemons (e.g. `.build/debug`).
    /// - Throws: a message saying what to build when they are missing.
    static func directory() throws -> String {
        var candidates: [URL] = []
        let argument0 = URL(fileURLWithPath: ProcessInfo.processInfo.arguments[0]).resolvingSymlinksInPath()
        candidates.append(argument0.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        candidates.append(Bundle.main.bundleURL.deletingLastPathComponent())
        for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
            candidates.append(bundle.bundleURL.deletingLastPathComponent())
        }
        for url in candidates {
            // macOS: .build/debug/X.xctest/Contents/MacOS/X; walk up a few levels.
            var dir = url
            for _ in 0..<4 {
                if ["fed-server", "fed-client"].allSatisfy({ FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent($0).path) }) {
                    return dir.path
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        throw DaemonError("fed-server and fed-client were not found beside the test bundle (looked in \(candidates.map(\.path))); run `swift build --build-tests` before `swift test --skip-build`")
    }
}

struct DaemonError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// One daemon process, its output going to a log file.
final class Daemon: @unchecked Sendable {
    let label: String
    let process: Process
    let log: String

    init(label: String, executable: String, arguments: [String], log: String) throws {
        self.label = label
        self.log = log
        process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = "1"
        process.environment = env
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        try? handle.close()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var text: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    func signal(_ s: Int32) { if process.isRunning { kill(pid, s) } }

    /// SIGKILL and reap.
    func killNow() {
        if process.isRunning { kill(pid, SIGCONT); kill(pid, SIGKILL) }
        process.waitUntilExit()
    }

    /// Waits for the process to exit by itself.
    func waitForExit(timeout: Double) throws -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            guard Date() < deadline else { throw DaemonError("\(label) still running after \(timeout) s; log tail:\n\(tail())") }
            usleep(20_000)
        }
        return process.terminationStatus
    }

    func tail(_ lines: Int = 15) -> String { text.split(separator: "\n").suffix(lines).joined(separator: "\n") }
}

/// A federation of real daemons on 127.0.0.1 with throw-away certificates, all killed at teardown.
final class DaemonFederation: @unchecked Sendable {
    static let widths = "4,4,8,16,8"
    let root: String
    let certificates: String
    let binaries: String
    let strategy: String
    private(set) var daemons: [Daemon] = []
    private var launches: [String: Int] = [:]

    init(name: String, clients: [String], strategy: String = "fedbn") throws {
        binaries = try Binaries.directory()
        root = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-faults-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: root)
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        certificates = root + "/pki"
        try EphemeralCertificates.write(to: certificates, clients: clients)
        self.strategy = strategy
    }

    func tls(_ name: String) -> [String] {
        ["--cert", "\(certificates)/\(name).crt", "--key", "\(certificates)/\(name).key", "--ca", "\(certificates)/ca.crt"]
    }

    var modelArguments: [String] { ["--strategy", strategy, "--widths", Self.widths, "--model-seed", "5"] }

    private func logPath(_ label: String) -> String {
        let n = launches[label, default: 0] + 1
        launches[label] = n
        return "\(root)/\(label)-\(n).log"
    }

    /// Starts `fed-server`; `port` 0 binds any free port (read it with `port(of:)`).
    func startServer(port: Int = 0, stateDir: String, rounds: Int, minFit: Int, minClients: Int, roundTimeout: Double,
                     extra: [String] = [], wrapper: String? = nil) throws -> Daemon {
        let args = ["--host", "127.0.0.1", "--port", String(port), "--rounds", String(rounds),
                    "--min-fit-clients", String(minFit), "--min-clients", String(minClients),
                    "--round-timeout", String(roundTimeout), "--connect-timeout", "60",
                    "--epochs", "1", "--batch-size", "8", "--lr", "0.05", "--seed", "3",
                    "--state-dir", stateDir] + modelArguments + tls("server") + extra
        let d: Daemon
        if let wrapper {
            // A shell that adjusts limits, then execs the server (same PID).
            d = try Daemon(label: "server", executable: "/bin/sh", arguments: ["-c", wrapper, binaries + "/fed-server"] + args, log: logPath("server"))
        } else {
            d = try Daemon(label: "server", executable: binaries + "/fed-server", arguments: args, log: logPath("server"))
        }
        daemons.append(d)
        return d
    }

    /// Starts `fed-client` NAME (domain = the name's prefix before "-") against `port`.
    func startClient(_ name: String, port: Int, trainCount: Int = 100, extra: [String] = []) throws -> Daemon {
        let domain = String(name.split(separator: "-")[0])
        let args = ["--server", "127.0.0.1:\(port)", "--server-name", "localhost",
                    "--data", "digits5:\(domain)", "--train-count", String(trainCount), "--test-count", "50",
                    "--state-dir", clientStateDir(name)] + modelArguments + tls(name) + extra
        let d = try Daemon(label: name, executable: binaries + "/fed-client", arguments: args, log: logPath(name))
        daemons.append(d)
        return d
    }

    func clientStateDir(_ name: String) -> String { "\(root)/clients/\(name)" }

    /// Starts one `fed-client` hosting the clients `names` (DOMAIN-0 each) against `port`.
    func startHost(_ names: [String], port: Int, trainCount: Int = 100, extra: [String] = []) throws -> Daemon {
        let args = ["--server", "127.0.0.1:\(port)", "--server-name", "localhost", "--clients", names.joined(separator: ","),
                    "--cert-dir", certificates, "--ca", "\(certificates)/ca.crt", "--shards", "1",
                    "--data", "digits5", "--train-count", String(trainCount), "--test-count", "50",
                    "--state-dir", "\(root)/clients"] + modelArguments + extra
        let d = try Daemon(label: "host", executable: binaries + "/fed-client", arguments: args, log: logPath("host"))
        daemons.append(d)
        return d
    }

    /// The port a server printed when it started listening.
    func port(of server: Daemon, timeout: Double = 30) throws -> Int {
        let line = try waitForLine(server, containing: "listening on 127.0.0.1:", timeout: timeout)
        guard let p = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) else {
            throw DaemonError("cannot read the port from \"\(line)\"")
        }
        return p
    }

    /// Waits until `daemon`'s log has a line containing `text` (after skipping `after` such lines).
    @discardableResult
    func waitForLine(_ daemon: Daemon, containing text: String, count: Int = 1, timeout: Double) throws -> String {
        try waitFor("\(daemon.label) to log \"\(text)\"", timeout: timeout, logs: [daemon]) {
            let lines = daemon.text.split(separator: "\n").filter { $0.contains(text) }
            return lines.count >= count ? String(lines[count - 1]) : nil
        }
    }

    /// Polls `condition` every 20 ms until it returns a value.
    func waitFor<T>(_ what: String, timeout: Double, logs: [Daemon] = [], _ condition: () throws -> T?) throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            if let v = try condition() { return v }
            guard Date() < deadline else {
                let tails = (logs.isEmpty ? daemons.suffix(4) : logs[...]).map { "--- \($0.label) (\($0.log)):\n\($0.tail())" }
                throw DaemonError("timed out after \(timeout) s waiting for \(what)\n" + tails.joined(separator: "\n"))
            }
            usleep(20_000)
        }
    }

    /// The metrics the server wrote so far (one record per completed round).
    func metrics(_ stateDir: String) -> [RoundMetrics] {
        let text = (try? String(contentsOfFile: stateDir + "/metrics.jsonl", encoding: .utf8)) ?? ""
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return text.split(separator: "\n").compactMap { try? decoder.decode(RoundMetrics.self, from: Data($0.utf8)) }
    }

    /// Kills every process this federation started (SIGCONT first, for stopped ones) and reaps it.
    func stopAll() {
        for d in daemons { d.killNow() }
    }

    /// Removes the federation's files, or keeps them (and says where) when the test failed.
    func finish(keepingLogs: Bool) {
        if keepingLogs {
            print("fault test failed: logs kept in \(root)")
        } else {
            try? FileManager.default.removeItem(atPath: root)
        }
    }
}

/// The server checkpoint's metadata as a test reads it.
typealias Checkpoint = (tensors: StateDictionary, metadata: CheckpointMetadata)

func readCheckpoint(_ stateDir: String) throws -> Checkpoint? {
    try TensorArchive.read(stateDir + "/checkpoint.fkt", as: CheckpointMetadata.self)
}

func readClientState(_ stateDir: String) throws -> (tensors: StateDictionary, metadata: ClientStateMetadata)? {
    try TensorArchive.read(stateDir + "/state.fkt", as: ClientStateMetadata.self)
}
