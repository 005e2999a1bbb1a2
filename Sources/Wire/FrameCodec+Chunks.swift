import Foundation
import NIOCore
import NIOFoundationCompat

extension FrameCodec {
    /// Decodes a frame that holds exactly a `PayloadChunk` envelope without copying the chunk's
    /// bytes: `chunk.data` is a view of the frame.
    ///
    /// Only the plain shape written by protobuf encoders is taken (an optional `sequence`, then
    /// `chunk` with fields 1-4, each at most once); anything else returns `nil` and goes through
    /// SwiftProtobuf, so the result never differs from a full decode.
    static func decodeChunkEnvelope(_ frame: ByteBuffer) -> Envelope? {
        var reader = frame
        var envelope = Envelope()
        var sawSequence = false, sawChunk = false
        while reader.readableBytes > 0 {
            guard let key = readVarint(&reader) else { return nil }
            switch key {
            case 0x08 where !sawSequence && !sawChunk:  // field 1 (sequence), varint
                guard let value = readVarint(&reader) else { return nil }
                envelope.sequence = value
                sawSequence = true
            case 0xA2 where !sawChunk:  // field 20 (chunk), length-delimited
                guard let length = readVarint(&reader), length <= UInt64(reader.readableBytes),
                      var body = reader.readSlice(length: Int(length)),
                      let chunk = parseChunk(&body) else { return nil }
                envelope.body = .chunk(chunk)
                sawChunk = true
            default:
                return nil
            }
        }
        return sawChunk ? envelope : nil
    }

    private static func parseChunk(_ reader: inout ByteBuffer) -> Fedkit_V1_PayloadChunk? {
        var chunk = Fedkit_V1_PayloadChunk()
        var seen: Set<UInt64> = []
        while reader.readableBytes > 0 {
            guard let key = readVarint(&reader), !seen.contains(key) else { return nil }
            seen.insert(key)
            switch key {
            case 0x08:  // transfer_id
                guard let value = readVarint(&reader) else { return nil }
                chunk.transferID = value
            case 0x10:  // index
                guard let value = readVarint(&reader) else { return nil }
                chunk.index = UInt32(truncatingIfNeeded: value)
            case 0x1A:  // data
                guard let length = readVarint(&reader), length <= UInt64(reader.readableBytes),
                      let bytes = reader.readSlice(length: Int(length)) else { return nil }
                chunk.data = bytes.getData(at: bytes.readerIndex, length: bytes.readableBytes, byteTransferStrategy: .noCopy) ?? Data()
            case 0x20:  // total_bytes
                guard let value = readVarint(&reader) else { return nil }
                chunk.totalBytes = value
            default:
                return nil
            }
        }
        return chunk
    }

    /// A protobuf varint of at most 10 bytes, or `nil`.
    private static func readVarint(_ reader: inout ByteBuffer) -> UInt64? {
        var value: UInt64 = 0
        for shift in stride(from: UInt64(0), to: 70, by: 7) {
            guard let byte = reader.readInteger(as: UInt8.self) else { return nil }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
        }
        return nil
    }
}
