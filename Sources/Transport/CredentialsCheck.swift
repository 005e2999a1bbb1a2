import Foundation
import SwiftASN1
import X509

extension Credentials {
    /// The part a member plays in the federation: what its certificate must be for.
    public enum Role: String, Sendable {
        case server, client
    }

    /// What `check(certificateFile:keyFile:caFile:role:now:warnWithin:)` found.
    public struct Check: Sendable, Equatable {
        /// Problems that do not stop a member from starting but will soon (a certificate
        /// about to expire) or stop some peers (a server certificate without names).
        public var warnings: [String] = []
        /// The names a server certificate covers ("DNS:host", "IP:10.0.0.5"): clients must
        /// dial one of them.
        public var names: [String] = []
        /// When the member's certificate, or the first certificate of its chain or CA to
        /// expire, stops being valid.
        public var expires: Date = .distantFuture
    }

    /// Checks the files a member starts with against each other, before any connection: the
    /// key belongs to the certificate, the certificate (through any intermediates) is signed
    /// by the CA, every certificate involved is valid now, and the certificate is meant for
    /// `role`. Each of these would otherwise surface only as handshakes that fail — on the
    /// peers' side, for a server — with no word of which file is wrong.
    ///
    /// Call after `load(certificateFile:keyFile:caFile:)` succeeded (the files are readable).
    /// - Parameter warnWithin: seconds before an expiry at which a warning is given.
    /// - Throws: `TransportError.credentialsRefused` naming the file at fault and what was
    ///   expected of it.
    public static func check(certificateFile: String, keyFile: String, caFile: String, role: Role,
                             now: Date = Date(), warnWithin: TimeInterval = 30 * 86_400) throws -> Check {
        func refuse(_ path: String, _ reason: String) -> TransportError { .credentialsRefused(path: path, reason: reason) }
        func certificates(_ path: String) throws -> [Certificate] {
            do {
                let text = try String(contentsOfFile: path, encoding: .utf8)
                return try PEMDocument.parseMultiple(pemString: text)
                    .filter { $0.discriminator == "CERTIFICATE" }
                    .map { try Certificate(pemDocument: $0) }
            } catch {
                throw refuse(path, "not a PEM certificate this checker can read (\(error))")
            }
        }
        let chain = try certificates(certificateFile), roots = try certificates(caFile)
        guard let leaf = chain.first else { throw refuse(certificateFile, "no certificate in the file") }
        guard !roots.isEmpty else { throw refuse(caFile, "no certificate in the file") }
        let name = leaf.subject.description

        // The key: a key of another certificate makes every handshake fail.
        if let text = try? String(contentsOfFile: keyFile, encoding: .utf8),
           let key = try? Certificate.PrivateKey(pemEncoded: text), key.publicKey != leaf.publicKey {
            throw refuse(keyFile, "the key does not belong to \(certificateFile) (\(name)): its public key differs; give the key the certificate was issued for")
        }

        // Validity now, for the certificate, its intermediates and the CA.
        var check = Check()
        func dated(_ c: Certificate, _ what: String, _ path: String) throws {
            if now < c.notValidBefore {
                throw refuse(path, "\(what) \(c.subject) is not valid before \(c.notValidBefore.ISO8601Format()) (now \(now.ISO8601Format())); check this machine's clock")
            }
            if now > c.notValidAfter {
                throw refuse(path, "\(what) \(c.subject) expired at \(c.notValidAfter.ISO8601Format()); issue a new one (cluster/certs.sh)")
            }
            check.expires = min(check.expires, c.notValidAfter)
            if c.notValidAfter.timeIntervalSince(now) < warnWithin {
                let days = Int(c.notValidAfter.timeIntervalSince(now) / 86_400)
                check.warnings.append("\(what) \(c.subject) in \(path) expires at \(c.notValidAfter.ISO8601Format()), in \(days) day\(days == 1 ? "" : "s"): peers will refuse it from then on; issue a new one before (cluster/certs.sh)")
            }
        }
        try dated(leaf, "certificate", certificateFile)
        for c in chain.dropFirst() { try dated(c, "intermediate certificate", certificateFile) }

        // The chain: each certificate signed by the next, the last by one of the CA's.
        for (c, issuer) in zip(chain, chain.dropFirst()) where !issuer.publicKey.isValidSignature(c.signature, for: c) {
            throw refuse(certificateFile, "certificate \(c.subject) is not signed by the next certificate in the file, \(issuer.subject)")
        }
        let top = chain.last!
        guard let root = roots.first(where: { $0.publicKey.isValidSignature(top.signature, for: top) }) else {
            throw refuse(certificateFile, "\(top.subject) (issued by \(top.issuer)) is not signed by the federation CA in \(caFile) (\(roots.map(\.subject.description).joined(separator: ", "))): peers will refuse it; give the CA that issued it, or a certificate issued by this CA")
        }
        try dated(root, "CA certificate", caFile)

        // The purpose: a CA's own certificate, or one restricted to the other role, is refused by peers.
        if case .isCertificateAuthority? = (try? leaf.extensions.basicConstraints) ?? nil {
            throw refuse(certificateFile, "\(name) is a CA certificate, not a \(role.rawValue) certificate; give the \(role.rawValue) certificate the CA issued (cluster/certs.sh)")
        }
        let wanted: ExtendedKeyUsage.Usage = role == .server ? .serverAuth : .clientAuth
        if let usages = try? leaf.extensions.extendedKeyUsage, !usages.contains(wanted), !usages.contains(.any) {
            throw refuse(certificateFile, "\(name) is not a \(role.rawValue) certificate (its extended key usage allows \(Array(usages).map { "\($0)" }.joined(separator: ", ")), not \(wanted)); use the \(role.rawValue) certificate cluster/certs.sh issued")
        }

        if role == .server {
            let names = (try? leaf.extensions.subjectAlternativeNames).flatMap { $0 } ?? SubjectAlternativeNames()
            for n in names {
                switch n {
                case .dnsName(let host): check.names.append("DNS:\(host)")
                case .ipAddress(let bytes): check.names.append("IP:\(Self.address(Array(bytes.bytes)))")
                default: break
                }
            }
            if check.names.isEmpty {
                check.warnings.append("server certificate \(name) in \(certificateFile) names no host (no subject alternative names): clients check the address they dial against those names and will refuse the server; issue it with cluster/certs.sh --server-name/--server-ip")
            }
        }
        return check
    }

    /// An IPv4 or IPv6 address in its usual text form.
    static func address(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        guard bytes.count == 16 else { return bytes.map { String(format: "%02x", $0) }.joined() }
        return stride(from: 0, to: 16, by: 2).map { String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16) }.joined(separator: ":")
    }
}
