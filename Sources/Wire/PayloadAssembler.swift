import Crypto
import Foundation
import NIOCore
import SwiftProtobuf

/// Reassembles chunked payloads on the receiving side and validates every payload before it is
/// handed on.
///
/// Feed it every inbound envelope in order. Chunks are absorbed (the call returns `nil`); an
/// envelope whose payload is chunked comes back with the reassembled tensors inline, but only
/// after the chunk count, the total size and the checksum (SHA-256 or CRC-32C) match and every tensor's shape,
/// dtype and size agree. Any mismatch throws and discards the transfer: nothing half-received
/// is ever returned. Other envelopes (heartbeats may be interleaved with chunks) pass through.
public struct PayloadAssembler: Sendable {
    /// Default largest reassembled payload: 1 GiB.
    public static let defaultMaximumPayloadSize = 1 << 30

    /// Largest payload, in bytes, that may be reassembled.
    public let maximumPayloadSize: Int

    private struct Transfer {
        var id: UInt64
        var nextIndex: UInt32
        var bytes: ByteBuffer
    }

    private var open: Transfer?

    /// Creates an assembler.
    /// - Parameter maximumPayloadSize: Largest reassembled payload in bytes.
    public init(maximumPayloadSize: Int = PayloadAssembler.defaultMaximumPayloadSize) {
        self.maximumPayloadSize = maximumPayloadSize
    }

    /// Whether a chunked transfer has started and not yet been completed.
    public var hasOpenTransfer: Bool { open != nil }

    /// The open transfer's identifier and the bytes of it received so far.
    var openTransfer: (id: UInt64, received: Int)? { open.map { ($0.id, $0.bytes.readableBytes) } }

    /// Drops the open transfer and what it had received.
    mutating func abandon() { open = nil }

    /// Takes one inbound envelope.
    /// - Returns: `nil` when the envelope was a chunk, otherwise the envelope with any payload
    ///   reassembled and validated.
    ///   `owner`, when given, is kept alive by the reassembled tensors' memory: it is released
    ///   when the last of them is (a receive permit uses this to cover the payload's whole life).
    /// - Throws: a `WireError` naming the transfer or tensor at fault; the transfer is dropped.
    public mutating func receive(_ envelope: Envelope, owner: AnyObject? = nil) throws -> Envelope? {
        if case .chunk(let chunk) = envelope.body {
            try absorb(chunk)
            return nil
        }
        guard let payload = envelope.payload else { return envelope }
        switch payload.content {
        case .inline(let set):
            _ = try set.wireTensors()
            return envelope
        case .chunked(let reference):
            let set = try complete(reference, owner: owner)
            var result = envelope
            result.payload = Fedkit_V1_Payload.with { $0.content = .inline(set) }
            return result
        case .none:
            return envelope
        }
    }

    private mutating func absorb(_ chunk: Fedkit_V1_PayloadChunk) throws {
        if var transfer = open {
            open = nil  // dropped on any error below
            guard chunk.transferID == transfer.id else {
                throw WireError.unexpectedTransfer(transferID: chunk.transferID, openTransferID: transfer.id)
            }
            guard chunk.index == transfer.nextIndex else {
                throw WireError.chunkOutOfOrder(transferID: transfer.id, expectedIndex: transfer.nextIndex, receivedIndex: chunk.index)
            }
            let size = transfer.bytes.readableBytes + chunk.data.count
            guard size <= maximumPayloadSize else {
                throw WireError.payloadTooLarge(transferID: transfer.id, size: size, limit: maximumPayloadSize)
            }
            transfer.bytes.writeBytes(chunk.data)
            transfer.nextIndex += 1
            open = transfer
        } else {
            guard chunk.index == 0 else {
                throw WireError.chunkOutOfOrder(transferID: chunk.transferID, expectedIndex: 0, receivedIndex: chunk.index)
            }
            guard chunk.data.count <= maximumPayloadSize else {
                throw WireError.payloadTooLarge(transferID: chunk.transferID, size: chunk.data.count, limit: maximumPayloadSize)
            }
            guard chunk.totalBytes <= UInt64(maximumPayloadSize) else {
                throw WireError.payloadTooLarge(transferID: chunk.transferID, size: Int(clamping: chunk.totalBytes), limit: maximumPayloadSize)
            }
            // Chunk 0 announces the total: allocate once.
            var bytes = ByteBufferAllocator().buffer(capacity: max(chunk.data.count, Int(chunk.totalBytes)))
            bytes.writeBytes(chunk.data)
            open = Transfer(id: chunk.transferID, nextIndex: 1, bytes: bytes)
        }
    }

    private mutating func complete(_ reference: Fedkit_V1_ChunkedPayload, owner: AnyObject?) throws -> Fedkit_V1_TensorSet {
        guard let transfer = open, transfer.id == reference.transferID else {
            open = nil
            throw WireError.missingChunks(transferID: reference.transferID, announcedChunks: reference.chunkCount, receivedChunks: 0)
        }
        open = nil
        guard transfer.nextIndex == reference.chunkCount else {
            throw WireError.missingChunks(transferID: transfer.id, announcedChunks: reference.chunkCount, receivedChunks: transfer.nextIndex)
        }
        guard UInt64(transfer.bytes.readableBytes) == reference.totalBytes else {
            throw WireError.payloadSizeMismatch(transferID: transfer.id, announced: reference.totalBytes, received: UInt64(transfer.bytes.readableBytes))
        }
        guard !reference.sha256.isEmpty || !reference.crc32C.isEmpty else {
            throw WireError.missingChecksum(transferID: transfer.id)
        }
        if !reference.sha256.isEmpty {
            let computed = transfer.bytes.withUnsafeReadableBytes { Data(SHA256.hash(data: $0)) }
            guard computed == reference.sha256 else {
                throw WireError.checksumMismatch(transferID: transfer.id, announced: reference.sha256.hexString, computed: computed.hexString)
            }
        }
        if !reference.crc32C.isEmpty {
            var crc = CRC32C()
            transfer.bytes.withUnsafeReadableBytes { crc.update($0) }
            guard crc.bigEndianBytes == reference.crc32C else {
                throw WireError.crc32cMismatch(transferID: transfer.id, announced: reference.crc32C.hexString, computed: crc.bigEndianBytes.hexString)
            }
        }
        let set = try TensorSetParser.parse(transfer.bytes, owner: owner)  // tensors share the reassembled buffer
        _ = try set.wireTensors()
        return set
    }
}

extension Data {
    /// Lower-case hexadecimal digits of the bytes.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(count * 2)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xf)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
