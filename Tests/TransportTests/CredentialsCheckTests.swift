import Crypto
import Foundation
import Transport
import X509
import XCTest

/// `Credentials.check`: files that load but cannot work are refused at start, naming the file.
final class CredentialsCheckTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "credentials-check-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: directory) }

    /// Writes a CA and its issued certificates as PEM files; returns the CA file's path.
    @discardableResult
    func write(_ pki: EphemeralPKI, as ca: String, _ issued: [String: EphemeralPKI.Issued]) throws -> String {
        let caPath = "\(directory)/\(ca).crt"
        try pki.ca.serializeAsPEM().pemString.write(toFile: caPath, atomically: true, encoding: .utf8)
        for (name, i) in issued {
            try i.certificate.serializeAsPEM().pemString.write(toFile: "\(directory)/\(name).crt", atomically: true, encoding: .utf8)
            try i.key.pemRepresentation.write(toFile: "\(directory)/\(name).key", atomically: true, encoding: .utf8)
        }
        return caPath
    }

    func path(_ name: String) -> String { "\(directory)/\(name)" }

    /// The refusal's file and reason, or a failure when `body` does not refuse.
    func refusal(_ body: () throws -> Credentials.Check, file: StaticString = #filePath, line: UInt = #line) -> (path: String, reason: String)? {
        do {
            _ = try body()
            XCTFail("not refused", file: file, line: line)
        } catch TransportError.credentialsRefused(let path, let reason) {
            return (path, reason)
        } catch {
            XCTFail("unexpected error \(error)", file: file, line: line)
        }
        return nil
    }

    func testMatchingCredentialsPassAndNameTheServersHosts() throws {
        let pki = try EphemeralPKI(name: "CA", validFor: 400 * 86_400)
        let ca = try write(pki, as: "ca", [
            "server": try pki.issue(commonName: "coordinator", server: true, dnsNames: ["fl.example"], addresses: [[10, 0, 0, 5]]),
            "c1": try pki.issue(commonName: "c1", server: false),
        ])
        let server = try Credentials.check(certificateFile: path("server.crt"), keyFile: path("server.key"), caFile: ca, role: .server)
        XCTAssertEqual(server.names, ["DNS:fl.example", "IP:10.0.0.5"])
        XCTAssertEqual(server.warnings, [])
        XCTAssertEqual(server.expires.timeIntervalSince1970, pki.ca.notValidAfter.timeIntervalSince1970, accuracy: 1)
        let client = try Credentials.check(certificateFile: path("c1.crt"), keyFile: path("c1.key"), caFile: ca, role: .client)
        XCTAssertEqual(client.warnings, [])
        XCTAssertEqual(client.names, [])
        // The files also load as credentials, as the daemons load them first.
        XCTAssertNoThrow(try Credentials.load(certificateFile: path("c1.crt"), keyFile: path("c1.key"), caFile: ca))
    }

    func testAnotherCertificatesKeyIsRefused() throws {
        let pki = try EphemeralPKI(name: "CA", validFor: 400 * 86_400)
        let ca = try write(pki, as: "ca", ["server": try pki.issue(commonName: "localhost", server: true, dnsNames: ["localhost"]),
                                           "c1": try pki.issue(commonName: "c1", server: false)])
        let r = refusal { try Credentials.check(certificateFile: path("server.crt"), keyFile: path("c1.key"), caFile: ca, role: .server) }
        XCTAssertEqual(r?.path, path("c1.key"))
        XCTAssertTrue(r?.reason.contains("does not belong to \(path("server.crt"))") ?? false, r?.reason ?? "")
    }

    func testACertificateOfAnotherCAIsRefused() throws {
        let ours = try EphemeralPKI(name: "Our CA", validFor: 400 * 86_400)
        let theirs = try EphemeralPKI(name: "Their CA", validFor: 400 * 86_400)
        let ca = try write(ours, as: "ca", [:])
        try write(theirs, as: "other-ca", ["c1": try theirs.issue(commonName: "c1", server: false)])
        let r = refusal { try Credentials.check(certificateFile: path("c1.crt"), keyFile: path("c1.key"), caFile: ca, role: .client) }
        XCTAssertEqual(r?.path, path("c1.crt"))
        XCTAssertTrue(r?.reason.contains("not signed by the federation CA in \(ca)") ?? false, r?.reason ?? "")
        XCTAssertTrue(r?.reason.contains("Their CA") ?? false, r?.reason ?? "")
    }

    func testACertificateForTheOtherRoleIsRefused() throws {
        let pki = try EphemeralPKI(name: "CA", validFor: 400 * 86_400)
        let ca = try write(pki, as: "ca", ["server": try pki.issue(commonName: "localhost", server: true, dnsNames: ["localhost"]),
                                           "c1": try pki.issue(commonName: "c1", server: false)])
        let asServer = refusal { try Credentials.check(certificateFile: path("c1.crt"), keyFile: path("c1.key"), caFile: ca, role: .server) }
        XCTAssertTrue(asServer?.reason.contains("not a server certificate") ?? false, asServer?.reason ?? "")
        let asClient = refusal { try Credentials.check(certificateFile: path("server.crt"), keyFile: path("server.key"), caFile: ca, role: .client) }
        XCTAssertTrue(asClient?.reason.contains("not a client certificate") ?? false, asClient?.reason ?? "")
    }

    func testTheCAsOwnCertificateIsNoMembers() throws {
        // A CA made here, so that its key can be written too: signed by itself, no extended key usage.
        let key = P256.Signing.PrivateKey()
        let name = try DistinguishedName { CommonName("Self CA") }
        let ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: Date().addingTimeInterval(-60), notValidAfter: Date().addingTimeInterval(400 * 86_400), issuer: name, subject: name,
            extensions: try Certificate.Extensions { Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil)) },
            issuerPrivateKey: .init(key))
        try ca.serializeAsPEM().pemString.write(toFile: path("ca.crt"), atomically: true, encoding: .utf8)
        try key.pemRepresentation.write(toFile: path("ca.key"), atomically: true, encoding: .utf8)
        for role in [Credentials.Role.server, .client] {
            let r = refusal { try Credentials.check(certificateFile: path("ca.crt"), keyFile: path("ca.key"), caFile: path("ca.crt"), role: role) }
            XCTAssertEqual(r?.path, path("ca.crt"))
            XCTAssertTrue(r?.reason.contains("is a CA certificate, not a \(role.rawValue) certificate") ?? false, r?.reason ?? "")
        }
    }

    func testValidityIsCheckedAndNearExpiryWarned() throws {
        // Valid from five minutes ago for a day and a half.
        let pki = try EphemeralPKI(name: "CA", validFor: 1.5 * 86_400)
        let ca = try write(pki, as: "ca", ["c1": try pki.issue(commonName: "c1", server: false)])
        func check(at now: Date) throws -> Credentials.Check {
            try Credentials.check(certificateFile: path("c1.crt"), keyFile: path("c1.key"), caFile: ca, role: .client, now: now)
        }
        let soon = try check(at: Date())
        XCTAssertEqual(soon.warnings.count, 2, "\(soon.warnings)")  // the certificate and the CA
        XCTAssertTrue(soon.warnings[0].contains("in 1 day"), soon.warnings[0])
        XCTAssertEqual(try check(at: Date()).expires, pki.ca.notValidAfter)
        XCTAssertEqual(try Credentials.check(certificateFile: path("c1.crt"), keyFile: path("c1.key"), caFile: ca, role: .client,
                                             warnWithin: 3600).warnings, [])
        let expired = refusal { try check(at: Date().addingTimeInterval(3 * 86_400)) }
        XCTAssertEqual(expired?.path, path("c1.crt"))
        XCTAssertTrue(expired?.reason.contains("expired at") ?? false, expired?.reason ?? "")
        let early = refusal { try check(at: Date().addingTimeInterval(-3600)) }
        XCTAssertTrue(early?.reason.contains("not valid before") ?? false, early?.reason ?? "")
        XCTAssertTrue(early?.reason.contains("clock") ?? false, early?.reason ?? "")
    }

    func testAServerCertificateWithoutNamesIsWarned() throws {
        let pki = try EphemeralPKI(name: "CA", validFor: 400 * 86_400)
        let ca = try write(pki, as: "ca", ["server": try pki.issue(commonName: "coordinator", server: true)])
        let check = try Credentials.check(certificateFile: path("server.crt"), keyFile: path("server.key"), caFile: ca, role: .server)
        XCTAssertEqual(check.names, [])
        XCTAssertEqual(check.warnings.count, 1)
        XCTAssertTrue(check.warnings[0].contains("names no host"), check.warnings[0])
    }

    func testTheCAFileMayHoldSeveralCAs() throws {
        let old = try EphemeralPKI(name: "Old CA", validFor: 400 * 86_400)
        let new = try EphemeralPKI(name: "New CA", validFor: 400 * 86_400)
        try write(new, as: "new", ["c1": try new.issue(commonName: "c1", server: false)])
        let both = path("both.crt")
        try (old.ca.serializeAsPEM().pemString + "\n" + new.ca.serializeAsPEM().pemString).write(toFile: both, atomically: true, encoding: .utf8)
        XCTAssertNoThrow(try Credentials.check(certificateFile: path("c1.crt"), keyFile: path("c1.key"), caFile: both, role: .client))
    }
}
