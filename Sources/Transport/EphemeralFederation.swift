import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// Throw-away federation credentials made in memory: a fresh CA, a server certificate and one
/// certificate per client, all EC P-256 and valid for one day.
///
/// Meant for benchmarks, demos and tests on one machine; a real federation's credentials come
/// from `cluster/certs.sh`, whose CA key can be kept offline.
public struct EphemeralFederation: Sendable {
    /// The server's credentials; its certificate names `serverName` (a DNS name).
    public let server: Credentials
    /// Each client's credentials, by name (the certificate's common name).
    public let clients: [String: Credentials]

    /// Creates a CA and signs a server certificate and one certificate per client name.
    /// - Parameters:
    ///   - serverName: DNS name in the server certificate; dial with `serverHostname` set to it.
    ///   - clientNames: Common names of the client certificates.
    /// - Throws: when a certificate cannot be built or serialized.
    public static func make(serverName: String = "localhost", clientNames: [String]) throws -> EphemeralFederation {
        let now = Date()
        let validity = (now.addingTimeInterval(-300), now.addingTimeInterval(86_400))
        let caKey = P256.Signing.PrivateKey()
        let caName = try DistinguishedName { CommonName("FedKit ephemeral CA") }
        let ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey),
            notValidBefore: validity.0, notValidAfter: validity.1, issuer: caName, subject: caName,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey))
        let caCertificate = try nioCertificate(ca)

        func issue(commonName: String, usage: ExtendedKeyUsage.Usage, dnsName: String?) throws -> Credentials {
            let key = P256.Signing.PrivateKey()
            let certificate = try Certificate(
                version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
                notValidBefore: validity.0, notValidAfter: validity.1, issuer: caName,
                subject: try DistinguishedName { CommonName(commonName) },
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                    try ExtendedKeyUsage([usage])
                    if let dnsName { SubjectAlternativeNames([.dnsName(dnsName)]) }
                },
                issuerPrivateKey: .init(caKey))
            return Credentials(certificateChain: [try nioCertificate(certificate)],
                               privateKey: try NIOSSLPrivateKey(bytes: Array(key.pemRepresentation.utf8), format: .pem),
                               trustRoots: [caCertificate])
        }

        let server = try issue(commonName: serverName, usage: .serverAuth, dnsName: serverName)
        var clients: [String: Credentials] = [:]
        for name in clientNames {
            clients[name] = try issue(commonName: name, usage: .clientAuth, dnsName: nil)
        }
        return EphemeralFederation(server: server, clients: clients)
    }

    private static func nioCertificate(_ certificate: Certificate) throws -> NIOSSLCertificate {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
    }
}
