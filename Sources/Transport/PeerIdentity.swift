import NIOCore
import NIOSSL
import NIOTLS
import X509

/// Fired inbound once the TLS handshake has completed: the peer's name, taken from the
/// common name of its (CA-verified) certificate.
public struct PeerIdentified: Sendable, Equatable {
    /// The certificate's common name.
    public var name: String
    public init(name: String) { self.name = name }
}

/// Turns NIOSSL's handshake-completed event into `PeerIdentified`.
///
/// Installed right after the TLS handler. A peer whose certificate has no common name is
/// reported through `errorCaught(TransportError.missingPeerIdentity)`.
final class PeerIdentityHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            context.fireUserInboundEventTriggered(event)
            do {
                guard let certificate = try context.pipeline.syncOperations.nioSSL_peerCertificate(),
                      let name = try Self.commonName(of: certificate) else {
                    throw TransportError.missingPeerIdentity
                }
                context.fireUserInboundEventTriggered(PeerIdentified(name: name))
            } catch {
                context.fireErrorCaught(error)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// The last common name of `certificate`'s subject, or `nil` when it has none.
    static func commonName(of certificate: NIOSSLCertificate) throws -> String? {
        let parsed = try Certificate(derEncoded: certificate.toDERBytes())
        var name: String?
        for rdn in parsed.subject {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                name = String(attribute.value)
            }
        }
        return name
    }
}

@available(*, unavailable)
extension PeerIdentityHandler: Sendable {}
