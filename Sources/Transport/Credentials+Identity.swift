extension Credentials {
    /// The common name of this member's own certificate: its identity in the federation.
    public var commonName: String? {
        guard let leaf = certificateChain.first else { return nil }
        return try? PeerIdentityHandler.commonName(of: leaf)
    }
}
