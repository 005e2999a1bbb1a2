import Foundation
import Logging
import NIOCore
import NIOSSL
import X509

/// Verifies a client's certificate chain against the federation CA with swift-certificates'
/// RFC 5280 policy (signatures, validity period, CA constraints) plus the client-authentication
/// extended key usage, and logs, in plain words, why a chain is refused: expired, not yet valid,
/// not signed by the federation CA, or not a client certificate.
///
/// Installed as the TLS server's verification callback; the handshake fails for every refused
/// chain exactly as with the TLS library's own verification.
struct ClientCertificateVerifier: Sendable {
    private let roots: [Certificate]
    private let logger: Logger

    /// Returns `nil` when the trust roots are not given as certificates or a file (for example
    /// the system's store): the TLS library's own verification is used then.
    init?(tls: TLSConfiguration, logger: Logger) {
        let sources: [NIOSSLCertificate]
        switch tls.trustRoots {
        case .certificates(let certificates)?: sources = certificates
        case .file(let path)?: guard let loaded = try? NIOSSLCertificate.fromPEMFile(path) else { return nil }; sources = loaded
        default: return nil
        }
        guard let parsed = try? sources.map({ try Certificate(derEncoded: $0.toDERBytes()) }), !parsed.isEmpty else { return nil }
        self.roots = parsed
        self.logger = logger
    }

    /// The NIOSSL verification callback.
    func verify(_ presented: [NIOSSLCertificate], _ promise: EventLoopPromise<NIOSSLVerificationResult>) {
        let roots = self.roots
        let logger = self.logger
        promise.completeWithTask {
            guard let chain = try? presented.map({ try Certificate(derEncoded: $0.toDERBytes()) }), let leaf = chain.first else {
                logger.warning("refusing client certificate", metadata: ["reason": "the client presented no readable certificate"])
                return .failed
            }
            // A certificate restricted to other purposes (a server's, say) cannot identify a client.
            if let usages = try? leaf.extensions.extendedKeyUsage, !usages.contains(.clientAuth), !usages.contains(.any) {
                logger.warning("refusing client certificate", metadata: [
                    "reason": "certificate \(leaf.subject) is not for client authentication (extended key usage \(usages))",
                ])
                return .failed
            }
            var verifier = Verifier(rootCertificates: CertificateStore(roots)) { RFC5280Policy() }
            let result = await verifier.validate(leaf: leaf, intermediates: CertificateStore(chain.dropFirst()))
            if case .validCertificate = result { return .certificateVerified }
            logger.warning("refusing client certificate", metadata: ["reason": "\(Self.explain(leaf: leaf, roots: roots, result: result))"])
            return .failed
        }
    }

    private static func explain(leaf: Certificate, roots: [Certificate], result: CertificateValidationResult) -> String {
        let name = leaf.subject.description
        let now = Date()
        if leaf.notValidAfter < now {
            return "client certificate \(name) expired at \(leaf.notValidAfter.ISO8601Format())"
        }
        if leaf.notValidBefore > now {
            return "client certificate \(name) is not valid before \(leaf.notValidBefore.ISO8601Format())"
        }
        if !roots.contains(where: { $0.subject == leaf.issuer }) {
            return "client certificate \(name) is issued by \(leaf.issuer), not by the federation CA"
        }
        if case .couldNotValidate(let failures) = result, !failures.isEmpty {
            return "client certificate \(name) does not meet RFC 5280: " + failures.map(\.policyFailureReason.description).joined(separator: "; ")
        }
        return "client certificate \(name) does not chain to the federation CA"
    }
}
