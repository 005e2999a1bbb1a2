import Crypto
import Foundation
import SwiftASN1
import X509

/// Creates a throw-away federation PKI as PEM files: a CA, a server certificate for
/// `localhost`/127.0.0.1 and one client certificate per name (its common name is the
/// client's identity). For `fed-sim` and tests on one machine; real federations use
/// `cluster/certs.sh`, whose CA key can be kept offline.
public enum EphemeralCertificates {
    /// Writes ca.crt, server.crt/.key and NAME.crt/.key for every client into `directory`.
    public static func write(to directory: String, clients: [String], validFor seconds: TimeInterval = 7 * 86_400) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let now = Date()
        let notBefore = now.addingTimeInterval(-300), notAfter = now.addingTimeInterval(seconds)
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName("FedKit simulation CA") }
        let ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey),
            notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName, subject: caName,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey))
        try save(ca.serializeAsPEM().pemString, "\(directory)/ca.crt")

        func issue(_ name: String, server: Bool) throws {
            let key = P256.Signing.PrivateKey()
            let cert = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: notBefore, notValidAfter: notAfter, issuer: caName,
                subject: try DistinguishedName { CommonName(name) },
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([server ? .serverAuth : .clientAuth])
                    if server { SubjectAlternativeNames([.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))]) }
                },
                issuerPrivateKey: .init(caKey))
            let file = server ? "server" : name
            try save(cert.serializeAsPEM().pemString, "\(directory)/\(file).crt")
            try save(key.pemRepresentation, "\(directory)/\(file).key", mode: 0o600)
        }
        try issue("localhost", server: true)
        for c in clients { try issue(c, server: false) }
    }

    static func save(_ text: String, _ path: String, mode: Int = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }
}
