import Crypto
import Foundation
import SwiftProtobuf

/// Splits an envelope whose inline tensor payload is too big for one frame into a run of
/// `PayloadChunk` envelopes followed by the envelope itself, now referring to the chunks
/// (or, `streamed`, the envelope followed by its chunks).
///
/// The chunks carry consecutive slices of the serialized `TensorSet`; the final envelope's
/// `ChunkedPayload` holds the chunk count, the total size and the SHA-256 of the whole
/// serialized set, so that the receiver (`PayloadAssembler`) verifies everything before it
/// decodes or applies a single tensor.
public struct PayloadChunker: Sendable {
    /// Default bytes of payload per chunk: 256 KiB. A receiver buffers about one chunk per
    /// connection that is sending (more while it waits for a receive permit), so smaller
    /// chunks keep a server with many clients smaller. Over TLS on loopback 1 MiB chunks
    /// move about 10% more per second (docs/server-memory.md), both far above a network's.
    public static let defaultChunkSize = 256 << 10
    /// Default largest serialized payload sent inline: 1 MiB.
    public static let defaultInlineLimit = 1 << 20

    /// Bytes of serialized payload per chunk; must leave room for the envelope in one frame.
    public var chunkSize: Int
    /// Largest serialized payload kept inline in its envelope.
    public var inlineLimit: Int
    /// Checksum put on chunked payloads; CRC-32C only if the peer announced it.
    public var checksum: PayloadChecksum
    /// Transfer identifier of the next chunked payload; unique per connection.
    public private(set) var nextTransferID: UInt64
    /// Sends the envelope before its chunks instead of after them, so that the receiver can
    /// use the payload as it arrives (`PayloadStream`); only once the peer announced
    /// `WireProtocol.streamedPayloadCapability`.
    public var streamed = false

    /// Creates a chunker.
    /// - Parameters:
    ///   - chunkSize: Bytes of payload per chunk, > 0.
    ///   - inlineLimit: Largest payload kept inline, >= 0.
    ///   - checksum: Checksum of chunked payloads.
    ///   - firstTransferID: Identifier of the first transfer.
    public init(chunkSize: Int = PayloadChunker.defaultChunkSize,
                inlineLimit: Int = PayloadChunker.defaultInlineLimit,
                checksum: PayloadChecksum = .sha256,
                firstTransferID: UInt64 = 1) {
        precondition(chunkSize > 0 && inlineLimit >= 0, "chunkSize must be positive and inlineLimit non-negative")
        self.chunkSize = chunkSize
        self.inlineLimit = inlineLimit
        self.checksum = checksum
        self.nextTransferID = firstTransferID
    }

    /// Returns the envelopes to send for `envelope`, in order.
    ///
    /// An envelope without an inline payload, or whose payload is at most `inlineLimit` bytes,
    /// comes back alone and unchanged.
    /// - Throws: `WireError.encodingFailed` when the payload cannot be serialized.
    public mutating func split(_ envelope: Envelope) throws -> [Envelope] {
        guard let payload = envelope.payload, case .inline(let set)? = payload.content else { return [envelope] }
        let segments: [Data]
        do {
            segments = try Self.serializedSegments(of: set)
        } catch {
            throw WireError.encodingFailed(kind: envelope.kind, reason: "\(error)")
        }
        let total = segments.reduce(0) { $0 + $1.count }
        guard total > inlineLimit else { return [envelope] }

        let transferID = nextTransferID
        nextTransferID &+= 1
        let digest: Data
        do {
            digest = try Self.checksum(checksum, of: segments)
        } catch {
            throw WireError.encodingFailed(kind: envelope.kind, reason: "its payload could not be read back from the page cache (\(error))")
        }

        var envelopes: [Envelope] = []
        envelopes.reserveCapacity(total / chunkSize + 2)
        var index: UInt32 = 0
        var segment = 0, offsetInSegment = 0
        var remaining = total
        while remaining > 0 {
            // Gather the next chunkSize bytes; a chunk inside one tensor's data is a view (no copy).
            var wanted = min(chunkSize, remaining)
            var pieces: [Data] = []
            while wanted > 0 {
                let data = segments[segment]
                let take = min(wanted, data.count - offsetInSegment)
                let from = data.startIndex + offsetInSegment
                pieces.append(data[from..<from + take])
                wanted -= take
                offsetInSegment += take
                if offsetInSegment == data.count { segment += 1; offsetInSegment = 0 }
            }
            var chunk = Fedkit_V1_PayloadChunk()
            chunk.transferID = transferID
            chunk.index = index
            if pieces.count == 1 {
                chunk.data = pieces[0]  // a view, read when the chunk is written
            } else {
                // Across tensors: joined now (from a PageCacheBuffer's file, not its mapping).
                var joined = Data(count: pieces.reduce(0) { $0 + $1.count })
                do {
                    try joined.withUnsafeMutableBytes { out in
                        var at = 0
                        for p in pieces {
                            try PageCacheBuffer.copyBytes(of: p, into: out.baseAddress! + at)
                            at += p.count
                        }
                    }
                } catch {
                    throw WireError.encodingFailed(kind: envelope.kind, reason: "its payload could not be read back from the page cache (\(error))")
                }
                chunk.data = joined
            }
            if index == 0 { chunk.totalBytes = UInt64(total) }
            remaining -= chunk.data.count
            envelopes.append(Envelope(.chunk(chunk)))
            index += 1
        }

        var reference = Fedkit_V1_ChunkedPayload()
        reference.transferID = transferID
        reference.chunkCount = index
        reference.totalBytes = UInt64(total)
        switch checksum {
        case .sha256: reference.sha256 = digest
        case .crc32c: reference.crc32C = digest
        }
        var carrier = envelope
        carrier.payload = Fedkit_V1_Payload.with { $0.content = .chunked(reference) }
        if streamed { envelopes.insert(carrier, at: 0) } else { envelopes.append(carrier) }
        return envelopes
    }

    /// The checksum of the concatenated `segments`, as the chunked reference carries it.
    ///
    /// Bytes in a `PageCacheBuffer` are read from its file a MiB at a time into one buffer,
    /// never through its mapping (no page faults). A payload made of such bytes and small
    /// headers — the model a coordinator serves to every client — is hashed once: the result is
    /// kept with the buffer, under a key made of the headers' bytes and the data's places in it.
    /// - Throws: `UnnamedFile.IOError` when the buffer's file cannot be read.
    static func checksum(_ kind: PayloadChecksum, of segments: [Data]) throws -> Data {
        let cache = PageCacheBuffer.checksumKey(kind.rawValue, segments)
        if let cache, let known = cache.buffer.checksum(for: cache.key) { return known }
        var sha256 = SHA256()
        var crc32c = CRC32C()
        var scratch: Data?
        for segment in segments {
            let mapped = PageCacheBuffer.isMapped(segment)
            var at = segment.startIndex
            while at < segment.endIndex {
                var piece = segment[at..<min(at + (1 << 20), segment.endIndex)]
                at = piece.endIndex
                if mapped {
                    if scratch == nil { scratch = Data(count: 1 << 20) }
                    let n = piece.count
                    try scratch!.withUnsafeMutableBytes { try PageCacheBuffer.copyBytes(of: piece, into: $0.baseAddress!) }
                    piece = scratch![0..<n]
                }
                switch kind {
                case .sha256: sha256.update(data: piece)
                case .crc32c: crc32c.update(piece)
                }
            }
        }
        let digest: Data
        switch kind {
        case .sha256: digest = Data(sha256.finalize())
        case .crc32c: digest = crc32c.bigEndianBytes
        }
        cache?.buffer.remember(digest, for: cache!.key)
        return digest
    }

    /// The protobuf serialization of `set` as consecutive pieces whose concatenation is exactly
    /// `set.serializedBytes()`: for each tensor a small header (the tensor without its data, then
    /// the data field's key and length) followed by the tensor's data itself, uncopied.
    static func serializedSegments(of set: Fedkit_V1_TensorSet) throws -> [Data] {
        guard set.unknownFields.data.isEmpty, set.tensors.allSatisfy({ $0.unknownFields.data.isEmpty }) else {
            return [try set.serializedBytes()]  // unknown fields are written after data: no shortcut
        }
        var segments: [Data] = []
        segments.reserveCapacity(set.tensors.count * 2)
        for tensor in set.tensors {
            var header = tensor
            header.data = Data()
            var headerBytes: Data = try header.serializedBytes()
            let dataCount = tensor.data.count
            if dataCount > 0 {
                // Field 4 (data), wire type 2, comes last in field-number order.
                headerBytes.append(0x22)
                appendVarint(UInt64(dataCount), to: &headerBytes)
            }
            var record = Data([0x0A])  // TensorSet field 1 (tensors), wire type 2
            appendVarint(UInt64(headerBytes.count + dataCount), to: &record)
            record.append(headerBytes)
            segments.append(record)
            if dataCount > 0 { segments.append(tensor.data) }
        }
        return segments
    }

    private static func appendVarint(_ value: UInt64, to data: inout Data) {
        var v = value
        while v >= 0x80 {
            data.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        data.append(UInt8(v))
    }
}
