/// Every way the Wire layer can refuse bytes or messages.
///
/// Each case carries the offending values; `description` reads as a sentence a user can
/// act on. A connection that produces one of these is closed by Transport.
public enum WireError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A frame header announced `length` bytes, more than the configured `limit`.
    case frameTooLarge(length: Int, limit: Int)
    /// A payload holding one of the server's receive permits was not complete within the
    /// `seconds` its size allows (`ReceivePermits.timeLimit(forBytes:)`); `received` of
    /// `total` bytes had arrived.
    case transferTooSlow(transferID: UInt64, received: Int, total: UInt64, seconds: Double)
    /// The stream ended in the middle of a frame.
    case truncatedFrame(expected: Int, received: Int)
    /// A frame of `length` bytes did not decode as an `Envelope`.
    case invalidEnvelope(length: Int, reason: String)
    /// An envelope could not be serialized.
    case encodingFailed(kind: String, reason: String)
    /// A chunk arrived out of sequence.
    case chunkOutOfOrder(transferID: UInt64, expectedIndex: UInt32, receivedIndex: UInt32)
    /// A chunk of another transfer arrived while transfer `openTransferID` was still open.
    case unexpectedTransfer(transferID: UInt64, openTransferID: UInt64)
    /// A chunked payload grew beyond the configured limit.
    case payloadTooLarge(transferID: UInt64, size: Int, limit: Int)
    /// A message referred to a chunked payload that was not (completely) received.
    case missingChunks(transferID: UInt64, announcedChunks: UInt32, receivedChunks: UInt32)
    /// A message announced a chunked payload size that differs from the bytes received.
    case payloadSizeMismatch(transferID: UInt64, announced: UInt64, received: UInt64)
    /// The SHA-256 of the received payload differs from the announced one.
    case checksumMismatch(transferID: UInt64, announced: String, computed: String)
    /// A reassembled payload did not decode as a `TensorSet`.
    case invalidTensorSet(reason: String)
    /// The CRC-32C of the received payload differs from the announced one.
    case crc32cMismatch(transferID: UInt64, announced: String, computed: String)
    /// A chunked payload carried neither a SHA-256 nor a CRC-32C.
    case missingChecksum(transferID: UInt64)
    /// A tensor's dtype is unspecified or unknown.
    case unsupportedDType(tensor: String, dtype: Int)
    /// A tensor has a negative dimension.
    case invalidShape(tensor: String, shape: [Int64])
    /// A tensor's byte count does not match its shape and dtype.
    case tensorSizeMismatch(tensor: String, shape: [Int64], expectedBytes: Int, actualBytes: Int)
    /// A tensor was read as a dtype it does not have.
    case dtypeMismatch(tensor: String, expected: String, actual: String)

    public var description: String {
        switch self {
        case let .frameTooLarge(length, limit):
            return "frame header announces \(length) bytes, more than the maximum frame size of \(limit) bytes"
        case let .transferTooSlow(id, received, total, seconds):
            return "payload transfer \(id) was not complete after \((seconds * 10).rounded() / 10) s, the time its \(total) bytes are allowed while they hold a receive permit (\(received) bytes received); the connection is closed so that others can send"
        case let .truncatedFrame(expected, received):
            return "connection ended inside a frame: expected \(expected) bytes, received \(received)"
        case let .invalidEnvelope(length, reason):
            return "frame of \(length) bytes is not a valid fedkit.v1.Envelope (\(reason))"
        case let .encodingFailed(kind, reason):
            return "could not encode \(kind) envelope (\(reason))"
        case let .chunkOutOfOrder(id, expected, received):
            return "payload transfer \(id): received chunk \(received), expected chunk \(expected)"
        case let .unexpectedTransfer(id, open):
            return "received a chunk of payload transfer \(id) while transfer \(open) is still open"
        case let .payloadTooLarge(id, size, limit):
            return "payload transfer \(id) reached \(size) bytes, more than the maximum payload size of \(limit) bytes"
        case let .missingChunks(id, announced, received):
            return "payload transfer \(id) announces \(announced) chunks but \(received) were received"
        case let .payloadSizeMismatch(id, announced, received):
            return "payload transfer \(id) announces \(announced) bytes but \(received) were received"
        case let .checksumMismatch(id, announced, computed):
            return "payload transfer \(id) failed its SHA-256 check: announced \(announced), computed \(computed); nothing was applied"
        case let .crc32cMismatch(id, announced, computed):
            return "payload transfer \(id) failed its CRC-32C check: announced \(announced), computed \(computed); nothing was applied"
        case let .missingChecksum(id):
            return "payload transfer \(id) carries no checksum; nothing was applied"
        case let .invalidTensorSet(reason):
            return "payload is not a valid fedkit.v1.TensorSet (\(reason))"
        case let .unsupportedDType(tensor, dtype):
            return "tensor \"\(tensor)\" has unsupported dtype \(dtype)"
        case let .invalidShape(tensor, shape):
            return "tensor \"\(tensor)\" has invalid shape \(shape)"
        case let .tensorSizeMismatch(tensor, shape, expected, actual):
            return "tensor \"\(tensor)\" of shape \(shape) needs \(expected) bytes but carries \(actual)"
        case let .dtypeMismatch(tensor, expected, actual):
            return "tensor \"\(tensor)\" has dtype \(actual), expected \(expected)"
        }
    }
}
