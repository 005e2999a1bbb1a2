import FedKitCLI
import Foundation
import XCTest

/// The daemons refuse, before listening or dialling, what cannot work — credentials that
/// load but do not fit together, a port out of range — naming the file or the value; good
/// settings start as before.
final class DaemonStartTests: XCTestCase {
    /// Runs `executable` of `federation` to its exit (at most 60 s); its status and log.
    func run(_ federation: DaemonFederation, _ executable: String, _ label: String, _ arguments: [String]) throws -> (status: Int32, log: String) {
        let d = try Daemon(label: label, executable: federation.binaries + "/" + executable, arguments: arguments,
                           log: "\(federation.root)/\(label).log")
        return (try d.waitForExit(timeout: 60), d.text)
    }

    func testDaemonsRefuseCredentialsThatCannotWork() throws {
        let federation = try DaemonFederation(name: "credentials", clients: ["mnist-0"])
        defer { federation.stopAll() }
        let pki = federation.certificates
        let server = ["--port", "0", "--host", "127.0.0.1", "--rounds", "1", "--state-dir", federation.root + "/server"]

        // The server given a client's key for its own certificate.
        let wrongKey = try run(federation, "fed-server", "wrong-key", server + ["--cert", "\(pki)/server.crt", "--key", "\(pki)/mnist-0.key", "--ca", "\(pki)/ca.crt"])
        XCTAssertNotEqual(wrongKey.status, 0)
        XCTAssertTrue(wrongKey.log.contains("\(pki)/mnist-0.key: the key does not belong to \(pki)/server.crt"), wrongKey.log)
        XCTAssertFalse(wrongKey.log.contains("listening"), wrongKey.log)

        // The server given a client's certificate.
        let clientCert = try run(federation, "fed-server", "client-cert", server + ["--cert", "\(pki)/mnist-0.crt", "--key", "\(pki)/mnist-0.key", "--ca", "\(pki)/ca.crt"])
        XCTAssertNotEqual(clientCert.status, 0)
        XCTAssertTrue(clientCert.log.contains("is not a server certificate"), clientCert.log)

        // A client whose CA file is another federation's.
        let other = federation.root + "/other"
        try EphemeralCertificates.write(to: other, clients: [])
        let client = ["--server", "127.0.0.1:9", "--data", "digits5:mnist", "--train-count", "10", "--test-count", "10",
                      "--state-dir", federation.root + "/client", "--max-attempts", "1"]
        let otherCA = try run(federation, "fed-client", "other-ca", client + ["--cert", "\(pki)/mnist-0.crt", "--key", "\(pki)/mnist-0.key", "--ca", "\(other)/ca.crt"])
        XCTAssertNotEqual(otherCA.status, 0)
        XCTAssertTrue(otherCA.log.contains("is not signed by the federation CA in \(other)/ca.crt"), otherCA.log)
        XCTAssertFalse(otherCA.log.contains("connecting to"), otherCA.log)

        // Good credentials: the server starts, names its hosts, and warns of nothing.
        let good = try Daemon(label: "good", executable: federation.binaries + "/fed-server",
                              arguments: server + federation.tls("server"), log: "\(federation.root)/good.log")
        defer { good.killNow() }
        try federation.waitForLine(good, containing: "listening on 127.0.0.1:", timeout: 60)
        XCTAssertTrue(good.text.contains("server certificate covers DNS:localhost, IP:127.0.0.1"), good.text)
        XCTAssertFalse(good.text.contains("expires at"), good.text)
    }

    func testPortsOutOfRangeAreRefused() throws {
        let federation = try DaemonFederation(name: "ports", clients: ["mnist-0"])
        defer { federation.stopAll() }
        // Both used to wrap around 65536 silently: 99999 listened on, or dialled, port 34463.
        let server = try run(federation, "fed-server", "server", ["--port", "99999", "--state-dir", federation.root + "/server"] + federation.tls("server"))
        XCTAssertNotEqual(server.status, 0)
        XCTAssertTrue(server.log.contains("--port (99999) must be 0...65535"), server.log)
        XCTAssertFalse(server.log.contains("listening"), server.log)
        let client = try run(federation, "fed-client", "client", ["--server", "127.0.0.1:99999", "--data", "digits5:mnist", "--max-attempts", "1",
                                                      "--state-dir", federation.root + "/client"] + federation.tls("mnist-0"))
        XCTAssertNotEqual(client.status, 0)
        XCTAssertTrue(client.log.contains("--server (127.0.0.1:99999): port 99999 must be 1...65535"), client.log)
        // Counts that cannot mean anything: not "could not connect after 1 attempt(s)".
        let attempts = try run(federation, "fed-client", "attempts", ["--server", "127.0.0.1:9", "--data", "digits5:mnist", "--max-attempts", "0",
                                                          "--state-dir", federation.root + "/client"] + federation.tls("mnist-0"))
        XCTAssertNotEqual(attempts.status, 0)
        XCTAssertTrue(attempts.log.contains("--max-attempts (0) must be at least 1"), attempts.log)
        // A name the server would refuse in the handshake, since it checks it against the certificate.
        let renamed = try run(federation, "fed-client", "renamed", ["--server", "127.0.0.1:9", "--data", "digits5:mnist", "--name", "svhn-0",
                                                        "--state-dir", federation.root + "/client"] + federation.tls("mnist-0"))
        XCTAssertNotEqual(renamed.status, 0)
        XCTAssertTrue(renamed.log.contains("--name (svhn-0) differs from the common name of its certificate (mnist-0)"), renamed.log)
    }

    /// `--check` validates everything a daemon can check alone, prints the run, and exits
    /// without listening, connecting or writing.
    func testCheckValidatesAndExitsWithoutWriting() throws {
        let federation = try DaemonFederation(name: "check", clients: ["mnist-0"])
        defer { federation.stopAll() }
        let serverState = federation.root + "/server", clientState = federation.root + "/client"
        let server = try run(federation, "fed-server", "server", ["--check", "--port", "7443", "--strategy", "fedwon", "--rounds", "7",
                                                      "--state-dir", serverState] + federation.tls("server"))
        XCTAssertEqual(server.status, 0, server.log)
        XCTAssertTrue(server.log.contains("fed-server: usable; would listen on 0.0.0.0:7443, start at round 1, and run fedwon on digit-cnn/none, 7 rounds"), server.log)
        XCTAssertTrue(server.log.contains("AGC λ 0.32"), server.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: serverState), "--check created the state directory")
        let client = try run(federation, "fed-client", "client", ["--check", "--server", "localhost:7443", "--data", "digits5:mnist",
                                                      "--train-count", "100", "--test-count", "20", "--state-dir", clientState] + federation.tls("mnist-0"))
        XCTAssertEqual(client.status, 0, client.log)
        XCTAssertTrue(client.log.contains("fed-client: usable; mnist-0 (mnist: 100 training and 20 test examples at 3×28×28, digit-cnn/batch) would connect to localhost:7443"), client.log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: clientState), "--check created the state directory")
        // What a real start would refuse, --check refuses too.
        let bad = try run(federation, "fed-server", "bad", ["--check", "--momentum", "1", "--state-dir", serverState] + federation.tls("server"))
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.log.contains("--momentum (1.0) must be in [0, 1)"), bad.log)
    }
}
