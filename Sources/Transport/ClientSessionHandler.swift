import Logging
import NIOCore
import Wire

/// Client side of a session: sends Hello once the server's certificate is verified, waits for
/// Welcome or Reject, then relays envelopes; handles timeouts and heartbeats.
///
/// `established` succeeds with the `PeerConnection` on Welcome, and fails with
/// `TransportError.rejected` on Reject, or with whatever ended the connection before.
final class ClientSessionHandler: ChannelInboundHandler {
    typealias InboundIn = Envelope
    typealias OutboundOut = Envelope

    private let hello: Fedkit_V1_Hello
    private let established: EventLoopPromise<PeerConnection>
    private var state = SessionState(peerRole: "server", greeting: "Welcome")
    private let core: SessionCore
    private var settled = false

    init(hello: Fedkit_V1_Hello, logger: Logger, readTimeout: TimeAmount, established: EventLoopPromise<PeerConnection>) {
        self.hello = hello
        self.established = established
        self.core = SessionCore(logger: logger, readTimeout: readTimeout)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let identity = event as? PeerIdentified {
            core.logger[metadataKey: "server"] = "\(identity.name)"
            state.stage = .awaitingGreeting(peer: identity.name)
            context.writeAndFlush(Self.wrapOutboundOut(Envelope(.hello(hello))), promise: nil)
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
            fail(context: context, error: TransportError.outOfOrder(kind: envelope.kind, state: state.description))
        case .awaitingGreeting(let server):
            switch envelope.body {
            case .welcome(let welcome):
                guard welcome.protocolVersion == hello.protocolVersion else {
                    fail(context: context, error: TransportError.unsupportedVersion(welcome.protocolVersion, supported: [hello.protocolVersion]))
                    return
                }
                state.stage = .established(peer: server)
                if welcome.capabilities.contains(WireProtocol.crc32cCapability) && hello.capabilities.contains(WireProtocol.crc32cCapability) {
                    useCRC32C(context: context)
                }
                if welcome.capabilities.contains(WireProtocol.streamedPayloadCapability) && hello.capabilities.contains(WireProtocol.streamedPayloadCapability),
                   let chunking = try? context.pipeline.syncOperations.handler(type: PayloadChunkingHandler.self) {
                    chunking.streamsOutbound = true  // updates go envelope first: the server folds them as they arrive
                }
                // The server times out a connection it hears nothing from: beat at least as often as it asks.
                heartbeat(atLeastEvery: .seconds(Int64(welcome.heartbeatIntervalSeconds)), context: context)
                core.logger.info("session established")
                settled = true
                established.succeed(PeerConnection(peerName: server, hello: hello, welcome: welcome, inbound: core.inbound, channel: context.channel))
            case .reject(let reject):
                fail(context: context, error: TransportError.rejected(reason: reject.reason, supportedVersions: reject.supportedVersions), tellPeer: false)
            case .error(let error):
                fail(context: context, error: TransportError.peerError(code: error.code.rawValue, message: error.message), tellPeer: false)
            default:
                fail(context: context, error: TransportError.outOfOrder(kind: envelope.kind, state: state.description))
            }
        case .established(let server):
            // The established promise has succeeded: failing here is ending the session.
            core.receiveEstablished(envelope, from: "server \"\(server)\"", expected: {
                switch $0.body { case .fitRequest, .evaluateRequest: true; default: false }
            }, state: state.description, context: context)
        }
    }

    private func fail(context: ChannelHandlerContext, error: Error, tellPeer: Bool = true) {
        core.terminate(context: context, error: error, tellPeer: tellPeer)
        settle(error)
    }

    private func settle(_ error: Error) {
        guard !settled else { return }
        settled = true
        established.fail(error)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context: context, error: error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        settle(core.failure ?? TransportError.closedBeforeEstablished(state: state.description))
        core.closed()
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension ClientSessionHandler: Sendable {}

/// Sends heartbeats at least every `interval`: the pipeline's idle handler is replaced by one
/// with the same read timeout and a write timeout of `interval`, when that is shorter than the
/// one it has. A client calls this with the interval the server announced in its Welcome.
private func heartbeat(atLeastEvery interval: TimeAmount, context: ChannelHandlerContext) {
    let pipeline = context.pipeline.syncOperations
    guard interval > .zero, let idle = try? pipeline.handler(type: IdleStateHandler.self),
          idle.writeTimeout == nil || idle.writeTimeout! > interval else { return }
    let replacement = IdleStateHandler(readTimeout: idle.readTimeout, writeTimeout: interval, allTimeout: idle.allTimeout)
    guard (try? pipeline.addHandler(replacement, position: .after(idle))) != nil else { return }
    pipeline.removeHandler(idle, promise: nil)
}
