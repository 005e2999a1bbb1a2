import NIOCore
import Wire

/// One established FedKit session: the authenticated peer, the envelopes it sends and a way to
/// answer.
///
/// Server side, a `PeerConnection` exists only after the client's certificate was verified, its
/// name allowed, its Hello accepted and a Welcome sent; client side, only after the server's
/// Welcome. Heartbeats are handled below and never appear in `inbound`. Large payloads arrive
/// reassembled and verified (SHA-256 or CRC-32C) — except, server side, a client's payloads in
/// the streamed order, when both announced `WireProtocol.streamedPayloadCapability`: then the
/// envelope arrives first, with its payload `chunked`, and its `PayloadChunk`s follow, for the
/// application to read with a `PayloadStream`. `inbound` finishes when the connection closes,
/// throwing the reason (`TransportError`, `WireError` or a TLS error) when it did not close cleanly.
public final class PeerConnection: Sendable {
    /// The peer's name: the common name of its verified certificate.
    public let peerName: String
    /// Server side: the client's Hello. Client side: the Hello we sent.
    public let hello: Fedkit_V1_Hello
    /// Client side: the server's Welcome. Server side: the Welcome we sent.
    public let welcome: Fedkit_V1_Welcome
    /// Envelopes from the peer, in order, after the Hello/Welcome exchange.
    public let inbound: Inbound

    private let channel: Channel

    init(peerName: String, hello: Fedkit_V1_Hello, welcome: Fedkit_V1_Welcome,
         inbound: AsyncThrowingStream<Envelope, Error>, channel: Channel, backlog: StreamBacklog? = nil) {
        self.peerName = peerName
        self.hello = hello
        self.welcome = welcome
        self.inbound = Inbound(stream: inbound, backlog: backlog)
        self.channel = channel
    }

    /// The envelopes from the peer. Asking for the next one tells the server's `StreamBacklog`
    /// that a streamed chunk returned before has been processed, so iterate it in the task that
    /// processes them.
    public struct Inbound: AsyncSequence, Sendable {
        public typealias Element = Envelope
        let stream: AsyncThrowingStream<Envelope, Error>
        let backlog: StreamBacklog?

        public struct AsyncIterator: AsyncIteratorProtocol {
            var base: AsyncThrowingStream<Envelope, Error>.AsyncIterator
            let backlog: StreamBacklog?
            var returnedChunk = false

            public mutating func next() async throws -> Envelope? {
                if returnedChunk {
                    returnedChunk = false
                    backlog?.processed()
                }
                let envelope = try await base.next()
                if backlog != nil, case .chunk? = envelope?.body { returnedChunk = true }
                return envelope
            }
        }

        public func makeAsyncIterator() -> AsyncIterator {
            AsyncIterator(base: stream.makeAsyncIterator(), backlog: backlog)
        }
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

    /// Sends one envelope, or gives up on the peer at `deadline`.
    ///
    /// A peer that has not taken the whole envelope by then (it stopped reading, or the network
    /// between us drops its packets while its TCP connection still looks open) is disconnected,
    /// and this throws at the deadline itself, without waiting for the TLS shutdown or for the
    /// read timeout to notice the silence.
    /// - Throws: `TransportError.sendDeadlineExceeded` at the deadline; otherwise as `send(_:)`.
    public func send(_ envelope: Envelope, before deadline: ContinuousClock.Instant) async throws {
        let channel = self.channel
        let peer = peerName
        let start = ContinuousClock.now
        let remaining = max(.zero, start.duration(to: deadline))
        // Both callbacks run on the channel's event loop; whichever completes `sent` first wins.
        let sent = channel.eventLoop.makePromise(of: Void.self)
        let timedOut = NIOLoopBoundBox.makeBoxSendingValue(false, as: Bool.self, eventLoop: channel.eventLoop)
        let overdue = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(remaining / .nanoseconds(1)))) {
            // Closed before the sender hears of it: the chunks still queued (views of the
            // sender's memory) are dropped by then. Closing fails the write, which must not
            // win over the deadline.
            timedOut.value = true
            channel.close(promise: nil)
            sent.fail(TransportError.sendDeadlineExceeded(peer: peer, seconds: start.duration(to: .now) / .seconds(1)))
        }
        channel.writeAndFlush(envelope).whenComplete { result in
            overdue.cancel()
            if !timedOut.value { sent.completeWith(result) }
        }
        try await sent.futureResult.get()
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
