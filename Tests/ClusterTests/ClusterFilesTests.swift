import Foundation
import XCTest

/// Checks cluster/'s deployment files and scripts without a cluster: the Kubernetes
/// manifests, systemd units and Dockerfile (through `cluster/check.py`), the
/// container entry point's ordinal → partition mapping, and the Secrets script.
final class ClusterFilesTests: XCTestCase {
    static let cluster = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("cluster").path

    /// Runs `executable arguments` with extra environment; returns its status and standard output + error.
    func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [executable] + arguments
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testDeploymentFilesAreConsistent() throws {
        let check = try run("python3", ["\(Self.cluster)/check.py"])
        if check.status == 127 { throw XCTSkip("python3 is not installed, so cluster/check.py cannot run") }
        if check.status == 3 { throw XCTSkip("PyYAML is missing (scripts/setup.sh --test installs python3-yaml): \(check.output)") }
        XCTAssertEqual(check.status, 0, "cluster/check.py found problems:\n\(check.output)")
    }

    func testEntrypointGivesEveryOrdinalItsOwnShard() throws {
        let domains = ["mnist", "usps", "svhn", "synth", "mnistm"]
        let clients = 12
        var shardsOf: [String: [String]] = [:]
        var names = Set<String>()
        for ordinal in 0..<clients {
            let r = try run("bash", ["\(Self.cluster)/k8s/entrypoint.sh", "client", "--lr", "0.02"], environment: [
                "HOSTNAME": "fed-client-\(ordinal)", "FEDKIT_ORDINAL": "", "FEDKIT_CLIENTS": String(clients),
                "FEDKIT_DOMAINS": domains.joined(separator: ","), "FEDKIT_DRY_RUN": "1"])
            XCTAssertEqual(r.status, 0, r.output)
            let words = r.output.split(whereSeparator: \.isWhitespace).map(String.init)
            func value(_ flag: String) -> String? { words.firstIndex(of: flag).map { words[$0 + 1] } }
            let domain = domains[ordinal % domains.count]
            XCTAssertEqual(value("--data"), "digits5:\(domain)", r.output)
            let partition = try XCTUnwrap(value("--partition"), r.output)
            shardsOf[domain, default: []].append(partition)
            let cert = try XCTUnwrap(value("--cert"), r.output)
            XCTAssertTrue(names.insert(cert).inserted, "two ordinals share \(cert)")
            XCTAssertEqual(words.suffix(2), ["--lr", "0.02"], "flags after the role must reach the daemon")
        }
        // Domains 0 and 1 have three clients (ordinals 0, 5, 10 and 1, 6, 11), the others two.
        XCTAssertEqual(shardsOf["mnist"], ["0/3", "1/3", "2/3"])
        XCTAssertEqual(shardsOf["usps"], ["0/3", "1/3", "2/3"])
        XCTAssertEqual(shardsOf["svhn"], ["0/2", "1/2"])
        XCTAssertEqual(shardsOf["mnistm"], ["0/2", "1/2"])

        let beyond = try run("bash", ["\(Self.cluster)/k8s/entrypoint.sh", "client"],
                             environment: ["HOSTNAME": "fed-client-5", "FEDKIT_CLIENTS": "5", "FEDKIT_DRY_RUN": "1"])
        XCTAssertEqual(beyond.status, 2, "an ordinal at or above FEDKIT_CLIENTS must be refused: \(beyond.output)")
        XCTAssertTrue(beyond.output.contains("FEDKIT_CLIENTS"), beyond.output)
    }

    func testSecretsScriptKeepsTheCAKeyOut() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-secrets-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let certs = try run("bash", ["\(Self.cluster)/certs.sh", "--server-name", "fed-server.fedkit.svc", dir, "mnist-0", "usps-0"])
        if certs.status == 1 && certs.output.contains("openssl not found") { throw XCTSkip("openssl is not installed") }
        XCTAssertEqual(certs.status, 0, certs.output)
        let secrets = try run("bash", ["\(Self.cluster)/k8s/secrets.sh", dir])
        XCTAssertEqual(secrets.status, 0, secrets.output)
        for needle in ["name: fedkit-server-tls", "name: fedkit-client-tls", "  server.key: ", "  mnist-0.key: ", "  usps-0.crt: ", "  ca.crt: "] {
            XCTAssertTrue(secrets.output.contains(needle), "secrets.sh output lacks \(needle)")
        }
        XCTAssertFalse(secrets.output.contains("ca.key"), "the CA's key must never go into a Secret")
    }
}
