import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A throw-away certificate authority (EC P-256) and the certificates it signs.
///
/// Meant for benchmarks, demos, simulations and tests on one machine; a real federation's
/// credentials come from `cluster/certs.sh`, whose CA key can be kept offline.
public struct EphemeralPKI: Sendable {
    /// A signed certificate and its private key.
    public struct Issued: Sendable {
        public let certificate: Certificate
        public let key: P256.Signing.PrivateKey
    }

    /// The CA's self-signed certificate.
    public let ca: Certificate
    private let caKey: P256.Signing.PrivateKey
    private let caName: DistinguishedName
    private let validity: (notBefore: Date, notAfter: Date)

    /// Creates a CA named `name` whose certificates are valid from five minutes ago for `seconds`.
    /// - Throws: when the CA certificate cannot be built.
    public init(name: String, validFor seconds: TimeInterval) throws {
        let now = Date()
        validity = (now.addingTimeInterval(-300), now.addingTimeInterval(seconds))
        caKey = P256.Signing.PrivateKey()
        caName = try DistinguishedName { CommonName(name) }
        ca = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(caKey.publicKey),
            notValidBefore: validity.notBefore, notValidAfter: validity.notAfter, issuer: caName, subject: caName,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: .init(caKey))
    }

    /// Signs a certificate for `commonName` (a client's identity, or a server's name) with a
    /// fresh key; a server certificate carries `dnsNames` and IPv4 `addresses` as alternative names.
    /// - Throws: when the certificate cannot be built.
    public func issue(commonName: String, server: Bool, dnsNames: [String] = [], addresses: [[UInt8]] = []) throws -> Issued {
        let key = P256.Signing.PrivateKey()
        let names = dnsNames.map { GeneralName.dnsName($0) } + addresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: .init(key.publicKey),
            notValidBefore: validity.notBefore, notValidAfter: validity.notAfter, issuer: caName,
            subject: try DistinguishedName { CommonName(commonName) },
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([server ? .serverAuth : .clientAuth])
                if !names.isEmpty { SubjectAlternativeNames(names) }
            },
            issuerPrivateKey: .init(caKey))
        return Issued(certificate: certificate, key: key)
    }
}

/// Throw-away federation credentials made in memory: a fresh CA, a server certificate and one
/// certificate per client, all EC P-256 and valid for one day.
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
        let pki = try EphemeralPKI(name: "FedKit ephemeral CA", validFor: 86_400)
        let caCertificate = try nioCertificate(pki.ca)
        func credentials(_ issued: EphemeralPKI.Issued) throws -> Credentials {
            Credentials(certificateChain: [try nioCertificate(issued.certificate)],
                        privateKey: try NIOSSLPrivateKey(bytes: Array(issued.key.pemRepresentation.utf8), format: .pem),
                        trustRoots: [caCertificate])
        }
        let server = try credentials(pki.issue(commonName: serverName, server: true, dnsNames: [serverName]))
        var clients: [String: Credentials] = [:]
        for name in clientNames {
            clients[name] = try credentials(pki.issue(commonName: name, server: false))
        }
        return EphemeralFederation(server: server, clients: clients)
    }

    private static func nioCertificate(_ certificate: Certificate) throws -> NIOSSLCertificate {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
    }
}
