import Foundation
import Transport

/// Creates a throw-away federation PKI as PEM files: a CA, a server certificate for
/// `localhost`/127.0.0.1 and one client certificate per name (its common name is the
/// client's identity). For `fed-sim` and tests on one machine; real federations use
/// `cluster/certs.sh`, whose CA key can be kept offline.
public enum EphemeralCertificates {
    /// Writes ca.crt, server.crt/.key and NAME.crt/.key for every client into `directory`,
    /// valid for 90 days by default: the daemons warn of certificates that expire within 30.
    /// The CA's key is never written, so nothing else can be signed with it.
    public static func write(to directory: String, clients: [String], validFor seconds: TimeInterval = 90 * 86_400) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let pki = try EphemeralPKI(name: "FedKit simulation CA", validFor: seconds)
        try save(pki.ca.serializeAsPEM().pemString, "\(directory)/ca.crt")
        func store(_ issued: EphemeralPKI.Issued, as file: String) throws {
            try save(issued.certificate.serializeAsPEM().pemString, "\(directory)/\(file).crt")
            try save(issued.key.pemRepresentation, "\(directory)/\(file).key", mode: 0o600)
        }
        try store(pki.issue(commonName: "localhost", server: true, dnsNames: ["localhost"], addresses: [[127, 0, 0, 1]]), as: "server")
        for c in clients { try store(pki.issue(commonName: c, server: false), as: c) }
    }

    static func save(_ text: String, _ path: String, mode: Int = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }
}
