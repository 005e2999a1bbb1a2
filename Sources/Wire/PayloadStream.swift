import Crypto
import Foundation

/// One step through a streamed `TensorSet`, in order: for every tensor a `begin`, its data as
/// any number of `data` pieces, then `end`.
public enum TensorStreamEvent {
    /// A tensor starts. `byteCount` bytes of data follow as `data` events (none when 0).
    case begin(name: String, shape: [Int64], dtype: DType, byteCount: Int)
    /// The next bytes of the current tensor's data: any length, any alignment, valid only
    /// during the call.
    case data(UnsafeRawBufferPointer)
    /// The current tensor's data is complete.
    case end
}

/// Receives a chunked payload whose envelope came first (the "streamed-payload" order) and
/// hands its tensors on piece by piece as the chunks arrive, never holding the payload whole.
///
/// It checks what `PayloadAssembler` checks — the transfer, the chunks' order and count, the
/// total size and the checksum — but the checks that need the whole payload can only come
/// after its last chunk: what `take` handed on is provisional until `take` returns `true`,
/// and a receiver that used it already must be able to take it back (the coordinator folds an
/// update as it arrives and keeps an undo log; `WeightedAverage.UpdateStream`).
///
/// The serialized `TensorSet` must hold only tensors (field 1), and each `Tensor` must end with
/// its data (field 4), which is how every protobuf encoder writes them: the header of a tensor
/// is then known before its data arrives.
public struct PayloadStream {
    /// The transfer being received.
    public let transferID: UInt64
    /// Bytes the envelope announced.
    public let totalBytes: UInt64
    /// Chunks the envelope announced.
    public let chunkCount: UInt32
    private let sha256: Data
    private let crc32cAnnounced: Data
    private var sha256Hash = SHA256()
    private var crc32c = CRC32C()
    /// Chunks taken so far.
    public private(set) var chunksReceived: UInt32 = 0
    /// Bytes received so far.
    public private(set) var receivedBytes: UInt64 = 0
    private var parser = TensorStreamParser()

    /// Whether every announced chunk was received and verified.
    public var isComplete: Bool { chunksReceived == chunkCount }

    /// - Throws: `WireError.missingChecksum` when the reference carries no checksum,
    ///   `.payloadTooLarge` above `maximumPayloadSize`, `.missingChunks` for an empty transfer.
    public init(_ reference: Fedkit_V1_ChunkedPayload, maximumPayloadSize: Int = PayloadAssembler.defaultMaximumPayloadSize) throws {
        transferID = reference.transferID
        totalBytes = reference.totalBytes
        chunkCount = reference.chunkCount
        sha256 = reference.sha256
        crc32cAnnounced = reference.crc32C
        guard !sha256.isEmpty || !crc32cAnnounced.isEmpty else { throw WireError.missingChecksum(transferID: transferID) }
        guard totalBytes <= UInt64(maximumPayloadSize) else {
            throw WireError.payloadTooLarge(transferID: transferID, size: Int(clamping: totalBytes), limit: maximumPayloadSize)
        }
        guard chunkCount >= 1, UInt64(chunkCount) <= max(totalBytes, 1) else {
            throw WireError.missingChunks(transferID: transferID, announcedChunks: chunkCount, receivedChunks: 0)
        }
    }

    /// Takes the transfer's next chunk and passes what it completes to `visit`.
    /// - Returns: `true` once the last chunk has been taken and the size, checksum and
    ///   structure of the whole payload verified.
    /// - Throws: a `WireError` naming the chunk, size or checksum at fault, or whatever `visit`
    ///   throws; the stream is unusable afterwards.
    public mutating func take(_ chunk: Fedkit_V1_PayloadChunk, _ visit: (TensorStreamEvent) throws -> Void) throws -> Bool {
        guard chunk.transferID == transferID else {
            throw WireError.unexpectedTransfer(transferID: chunk.transferID, openTransferID: transferID)
        }
        guard chunksReceived < chunkCount else {
            throw WireError.missingChunks(transferID: transferID, announcedChunks: chunkCount, receivedChunks: chunksReceived + 1)
        }
        guard chunk.index == chunksReceived else {
            throw WireError.chunkOutOfOrder(transferID: transferID, expectedIndex: chunksReceived, receivedIndex: chunk.index)
        }
        let size = receivedBytes + UInt64(chunk.data.count)
        guard size <= totalBytes else {
            throw WireError.payloadSizeMismatch(transferID: transferID, announced: totalBytes, received: size)
        }
        receivedBytes = size
        chunksReceived += 1
        try chunk.data.withUnsafeBytes { bytes in
            if !sha256.isEmpty { sha256Hash.update(bufferPointer: bytes) }
            if !crc32cAnnounced.isEmpty { crc32c.update(bytes) }
            try parser.feed(bytes, visit)
        }
        guard chunksReceived == chunkCount else { return false }
        guard receivedBytes == totalBytes else {
            throw WireError.payloadSizeMismatch(transferID: transferID, announced: totalBytes, received: receivedBytes)
        }
        if !sha256.isEmpty {
            let computed = Data(sha256Hash.finalize())
            guard computed == sha256 else {
                throw WireError.checksumMismatch(transferID: transferID, announced: sha256.hexString, computed: computed.hexString)
            }
        }
        if !crc32cAnnounced.isEmpty {
            guard crc32c.bigEndianBytes == crc32cAnnounced else {
                throw WireError.crc32cMismatch(transferID: transferID, announced: crc32cAnnounced.hexString, computed: crc32c.bigEndianBytes.hexString)
            }
        }
        guard parser.atBoundary else { throw WireError.invalidTensorSet(reason: "the payload ends inside a tensor") }
        return true
    }
}

/// Splits a serialized `TensorSet`, fed in pieces of any size, into `TensorStreamEvent`s.
/// Tensor headers are gathered (at most `maximumHeader` bytes); data is passed on uncopied.
struct TensorStreamParser {
    /// Longest tensor header accepted: name, shape and dtype fit in far less.
    static let maximumHeader = 1 << 20

    /// Bytes from the start of a tensor record whose header is not yet complete.
    private var pending: [UInt8] = []
    /// Data bytes of the current tensor still to come (> 0: inside a tensor's data).
    private var dataRemaining = 0

    /// Between two tensors: nothing partial is held.
    var atBoundary: Bool { dataRemaining == 0 && pending.isEmpty }

    mutating func feed(_ bytes: UnsafeRawBufferPointer, _ visit: (TensorStreamEvent) throws -> Void) throws {
        var input = bytes
        if dataRemaining > 0 {
            let n = min(dataRemaining, input.count)
            try visit(.data(UnsafeRawBufferPointer(rebasing: input[0..<n])))
            dataRemaining -= n
            if dataRemaining == 0 { try visit(.end) }
            input = UnsafeRawBufferPointer(rebasing: input[n...])
        }
        guard !input.isEmpty else { return }
        pending.append(contentsOf: input)
        var consumed = 0
        defer {
            // Let go of the chunk's worth of capacity once the header is out: a server reads
            // many streams at once.
            if consumed == pending.count { pending = [] } else { pending.removeFirst(consumed) }
        }
        while consumed < pending.count {
            let header = try pending.withUnsafeBytes { try Self.header(UnsafeRawBufferPointer(rebasing: $0[consumed...])) }
            guard let header else {
                guard pending.count - consumed <= Self.maximumHeader else {
                    throw WireError.invalidTensorSet(reason: "a tensor header runs past \(Self.maximumHeader) bytes")
                }
                return
            }
            try visit(.begin(name: header.tensor.name, shape: header.tensor.shape, dtype: header.tensor.dtype, byteCount: header.dataCount))
            consumed += header.length
            if header.dataCount > 0 {
                let n = min(header.dataCount, pending.count - consumed)
                if n > 0 { try pending.withUnsafeBytes { try visit(.data(UnsafeRawBufferPointer(rebasing: $0[consumed..<consumed + n]))) } }
                consumed += n
                if n < header.dataCount {
                    dataRemaining = header.dataCount - n
                    return
                }
            }
            try visit(.end)
        }
    }

    /// A tensor record's header: the tensor without its data, the bytes up to where the data
    /// starts, and the data's length.
    struct Header {
        var tensor: Fedkit_V1_Tensor
        var length: Int
        var dataCount: Int
    }

    /// The header of the tensor record at the start of `bytes`, or nil when `bytes` ends before it does.
    static func header(_ bytes: UnsafeRawBufferPointer) throws -> Header? {
        typealias Cursor = TensorSetParser.Cursor
        var top = Cursor(bytes: bytes, position: 0, end: bytes.count)
        let recordLength: UInt64
        do {
            let (field, wireType) = try top.readTag()
            guard field == 1 && wireType == 2 else {
                throw WireError.invalidTensorSet(reason: "a streamed payload holds only tensors (field 1), found field \(field) of wire type \(wireType)")
            }
            recordLength = try top.readVarint()
        } catch WireError.invalidTensorSet(let reason) where bytes.count < 20 && !reason.hasPrefix("a streamed") {
            return nil  // the two varints are not complete yet
        }
        guard recordLength <= UInt64(Int.max / 2) else { throw WireError.invalidTensorSet(reason: "tensor of \(recordLength) bytes") }
        let recordEnd = top.position + Int(recordLength)
        let complete = bytes.count >= recordEnd
        var reader = Cursor(bytes: bytes, position: top.position, end: min(bytes.count, recordEnd))
        var tensor = Fedkit_V1_Tensor()
        do {
            while !reader.atEnd {
                let (field, wireType) = try reader.readTag()
                if field == 4 && wireType == 2 {
                    let count = try reader.readVarint()
                    guard count == UInt64(recordEnd - reader.position) else {
                        throw WireError.invalidTensorSet(reason: "tensor \"\(tensor.name)\" has fields after its data; a streamed payload must end every tensor with its data")
                    }
                    return Header(tensor: tensor, length: reader.position, dataCount: Int(count))
                }
                try TensorSetParser.readHeaderField(field, wireType, &reader, into: &tensor)
            }
        } catch let error as WireError {
            // Cut short by the end of what has arrived, not malformed (or not yet known to be).
            if !complete, case .invalidTensorSet(let reason) = error, !reason.contains("streamed payload") { return nil }
            throw error
        }
        return complete ? Header(tensor: tensor, length: recordEnd, dataCount: 0) : nil
    }
}
