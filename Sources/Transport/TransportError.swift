import Foundation
import Wire

/// Every way a FedKit connection can be refused or end abnormally.
///
/// Each case carries the offending values; `description` reads as a sentence a user can act on.
/// Wire-level problems (frame too large, bad envelope, bad checksum) arrive as `WireError`.
public enum TransportError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The server refused our Hello.
    case rejected(reason: String, supportedVersions: [UInt32])
    /// The peer's certificate name is not on the allow-list.
    case peerNotAllowed(name: String)
    /// The TLS handshake finished without a peer certificate carrying a common name.
    case missingPeerIdentity
    /// The name in Hello differs from the certificate's common name.
    case nameMismatch(certificateName: String, helloName: String)
    /// The peer speaks a protocol version this build does not.
    case unsupportedVersion(UInt32, supported: [UInt32])
    /// A message arrived that the conversation does not allow at this point.
    case outOfOrder(kind: String, state: String)
    /// Nothing was read from the peer for this long.
    case readTimeout(seconds: Double)
    /// The peer had not taken a whole message by the sender's deadline (it stopped reading, or
    /// the network drops its packets), so the connection was closed.
    case sendDeadlineExceeded(peer: String, seconds: Double)
    /// The connection closed before the session was established.
    case closedBeforeEstablished(state: String)
    /// The peer reported a fatal error.
    case peerError(code: Int, message: String)
    /// The peer ended the session.
    case peerSaidGoodbye(reason: String)
    /// The dialer gave up.
    case connectFailed(attempts: Int, lastError: String)
    /// A certificate or key could not be loaded.
    case credentialsUnreadable(path: String, reason: String)
    /// Credentials that load but cannot work: a key of another certificate, a certificate
    /// not signed by the federation CA, expired, or meant for the other role.
    case credentialsRefused(path: String, reason: String)

    public var description: String {
        switch self {
        case let .rejected(reason, supported):
            return "server rejected the session: \(reason) (server supports protocol versions \(supported))"
        case let .peerNotAllowed(name):
            return "client \"\(name)\" is not on the server's allow-list"
        case .missingPeerIdentity:
            return "peer presented no certificate with a common name"
        case let .nameMismatch(certificateName, helloName):
            return "Hello names client \"\(helloName)\" but its certificate names \"\(certificateName)\""
        case let .unsupportedVersion(version, supported):
            return "protocol version \(version) is not supported; supported versions: \(supported.map(String.init).joined(separator: ", "))"
        case let .outOfOrder(kind, state):
            return "\(kind) is not allowed while \(state)"
        case let .readTimeout(seconds):
            return "nothing received for \(seconds) s: read timeout"
        case let .sendDeadlineExceeded(peer, seconds):
            return "peer \"\(peer)\" had not taken the message by its deadline (\(String(format: "%.1f", seconds)) s after it was sent); connection closed"
        case let .closedBeforeEstablished(state):
            return "connection closed while \(state)"
        case let .peerError(code, message):
            return "peer reported error \(code): \(message)"
        case let .peerSaidGoodbye(reason):
            return "peer said goodbye: \(reason)"
        case let .connectFailed(attempts, lastError):
            return "could not connect after \(attempts) attempt(s); last error: \(lastError)"
        case let .credentialsUnreadable(path, reason):
            return "cannot read TLS credentials from \(path): \(reason)"
        case let .credentialsRefused(path, reason):
            return "\(path): \(reason)"
        }
    }

    /// The protobuf error code to send to a peer for `error`.
    static func wireCode(for error: Error) -> Fedkit_V1_ErrorCode {
        switch error {
        case let wire as WireError:
            switch wire {
            case .frameTooLarge, .payloadTooLarge: return .frameTooLarge
            case .checksumMismatch, .crc32cMismatch, .missingChecksum, .missingChunks, .payloadSizeMismatch, .chunkOutOfOrder, .unexpectedTransfer: return .checksumMismatch
            case .encodingFailed: return .internal
            case .transferTooSlow: return .timeout
            default: return .malformed
            }
        case let transport as TransportError:
            switch transport {
            case .outOfOrder, .nameMismatch: return .outOfOrder
            case .readTimeout: return .timeout
            default: return .unspecified
            }
        default:
            return .internal
        }
    }
}
