import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import SwiftProtobuf

/// Splits an envelope whose inline tensor payload is too big for one frame into a run of
/// `PayloadChunk` envelopes followed by the envelope itself, now referring to the chunks.
///
/// The chunks carry consecutive slices of the serialized `TensorSet`; the final envelope's
/// `ChunkedPayload` holds the chunk count, the total size and the SHA-256 of the whole
/// serialized set, so that the receiver (`PayloadAssembler`) verifies everything before it
/// decodes or applies a single tensor.
public struct PayloadChunker: Sendable {
    /// Default bytes of payload per chunk: 4 MiB.
    public static let defaultChunkSize = 4 << 20
    /// Default largest serialized payload sent inline: 1 MiB.
    public static let defaultInlineLimit = 1 << 20

    /// Bytes of serialized payload per chunk; must leave room for the envelope in one frame.
    public var chunkSize: Int
    /// Largest serialized payload kept inline in its envelope.
    public var inlineLimit: Int
    /// Transfer identifier of the next chunked payload; unique per connection.
    public private(set) var nextTransferID: UInt64

    /// Creates a chunker.
    /// - Parameters:
    ///   - chunkSize: Bytes of payload per chunk, > 0.
    ///   - inlineLimit: Largest payload kept inline, >= 0.
    ///   - firstTransferID: Identifier of the first transfer.
    public init(chunkSize: Int = PayloadChunker.defaultChunkSize,
                inlineLimit: Int = PayloadChunker.defaultInlineLimit,
                firstTransferID: UInt64 = 1) {
        precondition(chunkSize > 0 && inlineLimit >= 0, "chunkSize must be positive and inlineLimit non-negative")
        self.chunkSize = chunkSize
        self.inlineLimit = inlineLimit
        self.nextTransferID = firstTransferID
    }

    /// Returns the envelopes to send for `envelope`, in order.
    ///
    /// An envelope without an inline payload, or whose payload is at most `inlineLimit` bytes,
    /// comes back alone and unchanged.
    /// - Throws: `WireError.encodingFailed` when the payload cannot be serialized.
    public mutating func split(_ envelope: Envelope) throws -> [Envelope] {
        guard let payload = envelope.payload, case .inline(let set)? = payload.content else { return [envelope] }
        let serialized: ProtobufBuffer
        do {
            serialized = try set.serializedBytes()
        } catch {
            throw WireError.encodingFailed(kind: envelope.kind, reason: "\(error)")
        }
        let bytes = serialized.buffer
        let total = bytes.readableBytes
        guard total > inlineLimit else { return [envelope] }

        let transferID = nextTransferID
        nextTransferID &+= 1
        var envelopes: [Envelope] = []
        envelopes.reserveCapacity(total / chunkSize + 2)
        var index: UInt32 = 0
        var offset = 0
        while offset < total {
            let length = min(chunkSize, total - offset)
            var chunk = Fedkit_V1_PayloadChunk()
            chunk.transferID = transferID
            chunk.index = index
            // A view of the serialized set: no copy.
            chunk.data = bytes.getData(at: bytes.readerIndex + offset, length: length, byteTransferStrategy: .noCopy)!
            if index == 0 { chunk.totalBytes = UInt64(total) }
            envelopes.append(Envelope(.chunk(chunk)))
            index += 1
            offset += length
        }

        var reference = Fedkit_V1_ChunkedPayload()
        reference.transferID = transferID
        reference.chunkCount = index
        reference.totalBytes = UInt64(total)
        reference.sha256 = bytes.withUnsafeReadableBytes { Data(SHA256.hash(data: $0)) }
        var last = envelope
        last.payload = Fedkit_V1_Payload.with { $0.content = .chunked(reference) }
        envelopes.append(last)
        return envelopes
    }
}
