import Logging
import NIOCore
import Wire

/// Server side of a session: allow-list, Hello/Welcome, message order, timeouts, heartbeats.
///
/// Expects `PeerIdentified` (from `PeerIdentityHandler`) before any envelope. Refuses, with a
/// logged reason and a closed connection: a name not on the allow-list (`Reject`), a first
/// message other than Hello (`Error`), an unsupported protocol version (`Reject` listing the
/// supported versions), a Hello whose name differs from the certificate (`Reject`), a message
/// a client may not send (`Error`), any `WireError` from below (`Error`), and silence longer
/// than the read timeout (`Error`). Once the session is established it hands a
/// `PeerConnection` to `onEstablished`.
final class ServerSessionHandler: ChannelInboundHandler {
    typealias InboundIn = Envelope
    typealias OutboundOut = Envelope

    struct Settings: Sendable {
        var allowedClients: Set<String>?
        var supportedVersions: [UInt32]
        var capabilities: [String]
        var heartbeatInterval: TimeAmount
        var readTimeout: TimeAmount
        var logger: Logger
    }

    private let settings: Settings
    private let onEstablished: @Sendable (PeerConnection) -> Void
    private var state = SessionState(peerRole: "client", greeting: "Hello")
    private let core: SessionCore

    init(settings: Settings, onEstablished: @escaping @Sendable (PeerConnection) -> Void) {
        self.settings = settings
        self.onEstablished = onEstablished
        self.core = SessionCore(logger: settings.logger, readTimeout: settings.readTimeout)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let identity = event as? PeerIdentified {
            core.logger[metadataKey: "peer"] = "\(identity.name)"
            core.logger.debug("TLS handshake completed")
            if let allowed = settings.allowedClients, !allowed.contains(identity.name) {
                core.terminate(context: context, error: TransportError.peerNotAllowed(name: identity.name), reject: settings.supportedVersions)
                return
            }
            state.stage = .awaitingGreeting(peer: identity.name)
            return
        }
        if core.handleIdle(context: context, event: event, established: state.isEstablished) { return }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !core.closing else { return }
        let envelope = Self.unwrapInboundIn(data)
        switch state.stage {
        case .awaitingIdentity:
            core.terminate(context: context, error: TransportError.outOfOrder(kind: envelope.kind, state: state.description))
        case .awaitingGreeting(let peer):
            guard case .hello(let hello) = envelope.body else {
                core.terminate(context: context, error: TransportError.outOfOrder(kind: envelope.kind, state: state.description))
                return
            }
            accept(hello, from: peer, context: context)
        case .established(let peer):
            // Chunks come up only as a streamed payload's (`PayloadChunkingHandler`).
            core.receiveEstablished(envelope, from: "client \"\(peer)\"", expected: {
                switch $0.body { case .fitResult, .evaluateResult, .chunk: true; default: false }
            }, state: state.description, context: context)
        }
    }

    private func accept(_ hello: Fedkit_V1_Hello, from peer: String, context: ChannelHandlerContext) {
        guard settings.supportedVersions.contains(hello.protocolVersion) else {
            core.terminate(context: context,
                           error: TransportError.unsupportedVersion(hello.protocolVersion, supported: settings.supportedVersions),
                           reject: settings.supportedVersions)
            return
        }
        guard hello.clientName == peer else {
            core.terminate(context: context, error: TransportError.nameMismatch(certificateName: peer, helloName: hello.clientName),
                           reject: settings.supportedVersions)
            return
        }
        let welcome = Fedkit_V1_Welcome.with {
            $0.protocolVersion = hello.protocolVersion
            $0.capabilities = settings.capabilities.filter(hello.capabilities.contains)
            $0.heartbeatIntervalSeconds = UInt32(max(0, settings.heartbeatInterval.nanoseconds / 1_000_000_000))
        }
        context.writeAndFlush(Self.wrapOutboundOut(Envelope(.welcome(welcome))), promise: nil)
        if welcome.capabilities.contains(WireProtocol.crc32cCapability) {
            useCRC32C(context: context)
        }
        var backlog: StreamBacklog?
        if welcome.capabilities.contains(WireProtocol.streamedPayloadCapability),
           let chunking = try? context.pipeline.syncOperations.handler(type: PayloadChunkingHandler.self) {
            chunking.acceptsStreamedPayloads = true
            backlog = chunking.backlog
        }
        state.stage = .established(peer: peer)
        core.logger.info("client session established", metadata: [
            "peer": "\(peer)", "domain": "\(hello.dataset.domain)", "train_examples": "\(hello.dataset.trainExamples)",
        ])
        onEstablished(PeerConnection(peerName: peer, hello: hello, welcome: welcome, inbound: core.inbound, channel: context.channel,
                                     backlog: backlog))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        core.terminate(context: context, error: error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if !state.isEstablished && core.failure == nil {
            core.logger.info("connection closed before a session was established", metadata: ["state": "\(state.description)"])
        }
        core.closed()
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ServerSessionHandler: Sendable {}

/// Switches the connection's outgoing chunked payloads to CRC-32C, once both peers announced it.
func useCRC32C(context: ChannelHandlerContext) {
    if let chunking = try? context.pipeline.syncOperations.handler(type: PayloadChunkingHandler.self) {
        chunking.checksum = .crc32c
    }
}
