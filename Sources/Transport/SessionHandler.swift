import Foundation
import Logging
import NIOCore
import NIOSSL
import Wire

/// Where a session stands, seen from either end: the TLS handshake names the peer, then its
/// greeting (Hello to the server, Welcome to the client) establishes the session.
struct SessionState {
    enum Stage {
        case awaitingIdentity
        case awaitingGreeting(peer: String)
        case established(peer: String)
    }

    var stage = Stage.awaitingIdentity
    /// What the other end is ("server", "client") and the greeting awaited from it.
    let peerRole: String
    let greeting: String

    init(peerRole: String, greeting: String) {
        self.peerRole = peerRole
        self.greeting = greeting
    }

    var isEstablished: Bool { if case .established = stage { true } else { false } }

    var description: String {
        switch stage {
        case .awaitingIdentity: return "waiting for the TLS handshake"
        case .awaitingGreeting(let peer): return "waiting for \(greeting) from \"\(peer)\""
        case .established(let peer): return "in session with \(peerRole) \"\(peer)\""
        }
    }
}

/// What both session handlers share: the stream towards the application, timeouts, heartbeats
/// and the orderly way to end a connection with a logged reason.
final class SessionCore {
    var logger: Logger
    let readTimeout: TimeAmount
    let inbound: AsyncThrowingStream<Envelope, Error>
    private let continuation: AsyncThrowingStream<Envelope, Error>.Continuation
    /// Why the connection is ending, once known.
    private(set) var failure: Error?
    private(set) var closing = false

    init(logger: Logger, readTimeout: TimeAmount) {
        self.logger = logger
        self.readTimeout = readTimeout
        (inbound, continuation) = AsyncThrowingStream.makeStream(of: Envelope.self, throwing: Error.self)
    }

    func deliver(_ envelope: Envelope) {
        continuation.yield(envelope)
    }

    /// Ends the connection because of `error`: logs the reason, tells the peer (an `Error`, or a
    /// `Reject` when `reject` is set) unless the failure is below the framing, then closes.
    func terminate(context: ChannelHandlerContext, error: Error, reject: [UInt32]? = nil, tellPeer: Bool = true) {
        guard !closing else { return }
        closing = true
        failure = error
        logger.warning("closing connection", metadata: ["reason": "\(Self.explain(error))"])
        let channel = context.channel
        guard tellPeer, !(error is NIOSSLError), !(error is BoringSSLError) else {
            context.close(promise: nil)
            return
        }
        let envelope: Envelope
        if let supported = reject {
            envelope = Envelope(.reject(.with { $0.reason = "\(error)"; $0.supportedVersions = supported }))
        } else {
            envelope = Envelope(.error(.with { $0.code = TransportError.wireCode(for: error); $0.message = "\(error)" }))
        }
        context.writeAndFlush(NIOAny(envelope)).whenComplete { _ in channel.close(promise: nil) }
        // A peer that does not read must not keep the connection open.
        context.eventLoop.scheduleTask(in: .seconds(2)) { channel.close(promise: nil) }
    }

    /// A sentence for the log: TLS failures are named in plain words, followed by the library's error.
    static func explain(_ error: Error) -> String {
        let raw = "\(error)"
        let known: [(String, String)] = [
            ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLS handshake failed: the peer presented no client certificate"),
            ("CERTIFICATE_VERIFY_FAILED", "TLS handshake failed: the peer's certificate was not accepted (not signed by the federation CA, expired or not yet valid)"),
            ("WRONG_VERSION_NUMBER", "TLS handshake failed: the peer does not speak TLS (plaintext?)"),
            ("HTTP_REQUEST", "TLS handshake failed: the peer sent a plaintext HTTP request"),
            ("TLSV1_ALERT_UNKNOWN_CA", "TLS handshake failed: the peer does not trust our certificate's CA"),
            ("UNSUPPORTED_PROTOCOL", "TLS handshake failed: the peer does not support TLS 1.3"),
        ]
        for (code, sentence) in known where raw.contains(code) {
            return "\(sentence) [\(raw)]"
        }
        return raw
    }

    /// Ends the connection without an error (a Goodbye, or our own close).
    func finishCleanly(context: ChannelHandlerContext, reason: String) {
        guard !closing else { return }
        closing = true
        logger.info("closing connection", metadata: ["reason": "\(reason)"])
        context.close(promise: nil)
    }

    /// Called from `channelInactive`: finishes the application's stream.
    func closed() {
        if let failure {
            continuation.finish(throwing: failure)
        } else {
            continuation.finish()
        }
    }

    /// What both sides do with a message once the session is established, whichever side
    /// they are: `expected` (the requests a client gets, the results a server gets) go up to
    /// the application, a heartbeat is absorbed, Goodbye and Error are delivered and end the
    /// session, anything else ends it as out of order. `peer` names the other side in the log
    /// ("client \"mnist-0\"").
    func receiveEstablished(_ envelope: Envelope, from peer: String, expected: (Envelope) -> Bool, state: String,
                            context: ChannelHandlerContext) {
        switch envelope.body {
        case .heartbeat:
            break
        case .goodbye(let goodbye):
            deliver(envelope)
            finishCleanly(context: context, reason: "\(peer) said goodbye: \(goodbye.reason)")
        case .error(let error):
            deliver(envelope)
            terminate(context: context, error: TransportError.peerError(code: error.code.rawValue, message: error.message), tellPeer: false)
        default:
            if expected(envelope) {
                deliver(envelope)
            } else {
                terminate(context: context, error: TransportError.outOfOrder(kind: envelope.kind, state: state))
            }
        }
    }

    /// Handles idle events; returns `true` when `event` was one.
    func handleIdle(context: ChannelHandlerContext, event: Any, established: Bool) -> Bool {
        guard let idle = event as? IdleStateHandler.IdleStateEvent else { return false }
        switch idle {
        case .read:
            let seconds = Double(readTimeout.nanoseconds) / 1e9
            terminate(context: context, error: TransportError.readTimeout(seconds: seconds))
        case .write:
            if established && !closing {
                let millis = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
                context.writeAndFlush(NIOAny(Envelope(.heartbeat(.with { $0.unixMillis = millis }))), promise: nil)
            }
        case .all:
            break
        }
        return true
    }
}
