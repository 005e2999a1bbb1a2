import NIOSSL

/// A party's TLS credentials in a federation: its certificate chain and key, and the
/// federation CA that signs every certificate.
public struct Credentials: Sendable {
    /// This party's certificate first, then any intermediates.
    public var certificateChain: [NIOSSLCertificate]
    /// This party's private key.
    public var privateKey: NIOSSLPrivateKey
    /// The federation CA(s) a peer's certificate must chain to.
    public var trustRoots: [NIOSSLCertificate]

    /// Creates credentials from loaded objects.
    public init(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey, trustRoots: [NIOSSLCertificate]) {
        self.certificateChain = certificateChain
        self.privateKey = privateKey
        self.trustRoots = trustRoots
    }

    /// Loads PEM files as written by `cluster/certs.sh`.
    /// - Parameters:
    ///   - certificateFile: This party's certificate (chain), PEM.
    ///   - keyFile: This party's private key, PEM.
    ///   - caFile: The federation CA certificate, PEM.
    /// - Throws: `TransportError.credentialsUnreadable` naming the file at fault.
    public static func load(certificateFile: String, keyFile: String, caFile: String) throws -> Credentials {
        func read<T>(_ path: String, _ body: () throws -> T) throws -> T {
            do { return try body() } catch { throw TransportError.credentialsUnreadable(path: path, reason: "\(error)") }
        }
        let chain = try read(certificateFile) { try NIOSSLCertificate.fromPEMFile(certificateFile) }
        let key = try read(keyFile) { try NIOSSLPrivateKey(file: keyFile, format: .pem) }
        let roots = try read(caFile) { try NIOSSLCertificate.fromPEMFile(caFile) }
        guard !chain.isEmpty else { throw TransportError.credentialsUnreadable(path: certificateFile, reason: "no certificate in file") }
        guard !roots.isEmpty else { throw TransportError.credentialsUnreadable(path: caFile, reason: "no certificate in file") }
        return Credentials(certificateChain: chain, privateKey: key, trustRoots: roots)
    }

    /// TLS 1.3 server configuration that requires a client certificate signed by `trustRoots`.
    func makeServerTLS() -> TLSConfiguration {
        var tls = TLSConfiguration.makeServerConfigurationWithMTLS(
            certificateChain: certificateChain.map { .certificate($0) },
            privateKey: .privateKey(privateKey),
            trustRoots: .certificates(trustRoots))
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .noHostnameVerification  // required and CA-verified; names are checked by the allow-list
        return tls
    }

    /// TLS 1.3 client configuration that presents our certificate and fully verifies the server's.
    func makeClientTLS() -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv13
        tls.certificateVerification = .fullVerification
        tls.trustRoots = .certificates(trustRoots)
        tls.certificateChain = certificateChain.map { .certificate($0) }
        tls.privateKey = .privateKey(privateKey)
        return tls
    }
}
