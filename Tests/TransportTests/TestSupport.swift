import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import XCTest
@testable import Transport
@testable import Wire

/// The repository's root, found from this file's path.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

/// Runs a command; fails with its output when it exits non-zero or cannot be found.
@discardableResult
func runCommand(_ arguments: [String], in directory: URL? = nil, environment: [String: String]? = nil) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    if let environment { process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    process.standardInput = FileHandle.nullDevice
    try process.run()
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw CommandFailed(command: arguments.joined(separator: " "), status: process.terminationStatus, output: output)
    }
    return output
}

struct CommandFailed: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var output: String
    var description: String { "`\(command)` exited with \(status):\n\(output)" }
}

/// Fails the test with a clear message when a tool the test needs is not installed
/// (scripts/setup.sh --test installs them).
func requireTool(_ name: String, package: String) throws {
    do { try runCommand(["sh", "-c", "command -v \(name)"]) } catch {
        throw MissingTool(name: name, package: package)
    }
}

struct MissingTool: Error, CustomStringConvertible {
    var name: String
    var package: String
    var description: String { "\(name) is not installed; run `bash scripts/setup.sh --test` (Debian package \(package))" }
}

/// A federation's credentials generated at test time with cluster/certs.sh, plus an expired
/// client certificate and a client of another CA.
final class TestPKI: @unchecked Sendable {
    let directory: URL
    let otherCA: URL

    static let shared: Result<TestPKI, Error> = Result { try TestPKI() }

    private init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-pki-\(UUID().uuidString)")
        otherCA = directory.appendingPathComponent("other")
        let script = repositoryRoot.appendingPathComponent("cluster/certs.sh").path
        try runCommand(["bash", script, directory.path, "alice", "bob", "mallory", "raw"])
        try runCommand(["bash", script, "--ca-name", "Someone else's CA", otherCA.path, "alice"])
        // An expired client certificate for "alice", signed by the federation CA.
        let config = """
        [ca]
        default_ca = test
        [test]
        database = \(directory.path)/index.txt
        new_certs_dir = \(directory.path)
        serial = \(directory.path)/serial
        default_md = sha256
        policy = any
        [any]
        commonName = supplied
        """
        try config.write(to: directory.appendingPathComponent("ca.cnf"), atomically: true, encoding: .utf8)
        try runCommand(["sh", "-c", """
            set -e; cd '\(directory.path)'
            : > index.txt; echo 01 > serial
            openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out expired.key
            openssl req -new -key expired.key -subj /CN=alice -out expired.csr
            openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr -out expired.crt \
                -startdate 20200101000000Z -enddate 20200102000000Z -notext
            """])
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func credentials(_ name: String, certificate: String? = nil, ca: String = "ca.crt") throws -> Credentials {
        try Credentials.load(certificateFile: path(certificate ?? "\(name).crt"), keyFile: path("\(name).key"), caFile: path(ca))
    }

    func otherCredentials(_ name: String) throws -> Credentials {
        // Certificate and key from the other CA, but trusting our CA for the server.
        try Credentials.load(certificateFile: otherCA.appendingPathComponent("\(name).crt").path,
                             keyFile: otherCA.appendingPathComponent("\(name).key").path, caFile: path("ca.crt"))
    }
}

func pki() throws -> TestPKI { try TestPKI.shared.get() }

/// Collects log messages so that tests can check that a refusal was logged with its reason.
final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var _lines: [String] = []

    var lines: [String] { lock.lock(); defer { lock.unlock() }; return _lines }

    func append(_ line: String) { lock.lock(); _lines.append(line); lock.unlock() }

    func logger(label: String) -> Logger {
        var logger = Logger(label: label) { _ in CapturingHandler(capture: self) }
        logger.logLevel = .debug
        return logger
    }

    /// Waits until some line contains `text`.
    func waitFor(_ text: String, timeout: TimeAmount = .seconds(10)) async -> Bool {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            if lines.contains(where: { $0.contains(text) }) { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return false
    }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            let rendered = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let level = event.level, message = event.message
            capture.append("\(level) \(message) \(rendered)")
        }
    }
}
