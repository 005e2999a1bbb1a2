import NIOCore
import Wire

/// One established FedKit session: the authenticated peer, the envelopes it sends and a way to
/// answer.
///
/// Server side, a `PeerConnection` exists only after the client's certificate was verified, its
/// name allowed, its Hello accepted and a Welcome sent; client side, only after the server's
/// Welcome. Heartbeats are handled below and never appear in `inbound`. Large payloads arrive
/// reassembled and SHA-256-verified. `inbound` finishes when the connection closes, throwing
/// the reason (`TransportError`, `WireError` or a TLS error) when it did not close cleanly.
public final class PeerConnection: Sendable {
    /// The peer's name: the common name of its verified certificate.
    public let peerName: String
    /// Server side: the client's Hello. Client side: the Hello we sent.
    public let hello: Fedkit_V1_Hello
    /// Client side: the server's Welcome. Server side: the Welcome we sent.
    public let welcome: Fedkit_V1_Welcome
    /// Envelopes from the peer, in order, after the Hello/Welcome exchange.
    public let inbound: AsyncThrowingStream<Envelope, Error>

    private let channel: Channel

    init(peerName: String, hello: Fedkit_V1_Hello, welcome: Fedkit_V1_Welcome,
         inbound: AsyncThrowingStream<Envelope, Error>, channel: Channel) {
        self.peerName = peerName
        self.hello = hello
        self.welcome = welcome
        self.inbound = inbound
        self.channel = channel
    }

    /// Address of the peer.
    public var remoteAddress: SocketAddress? { channel.remoteAddress }

    /// Sends one envelope; large payloads are chunked automatically.
    ///
    /// Returns once the envelope (all of its chunks) has been handed to the socket, which gives
    /// natural back-pressure for large models.
    /// - Throws: `WireError` when it cannot be encoded, or a channel error when the connection is closed.
    public func send(_ envelope: Envelope) async throws {
        try await channel.writeAndFlush(envelope)
    }

    /// Sends a Goodbye with `reason`, then closes the connection.
    public func goodbye(reason: String) async {
        try? await send(Envelope(.goodbye(.with { $0.reason = reason })))
        await close()
    }

    /// Closes the connection; `inbound` finishes.
    public func close() async {
        try? await channel.close()
    }

    /// Waits until the connection is closed.
    public func waitUntilClosed() async {
        try? await channel.closeFuture.get()
    }
}
