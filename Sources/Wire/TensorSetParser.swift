import Foundation
import NIOCore
import NIOFoundationCompat

/// Parses a serialized `fedkit.v1.TensorSet` without copying tensor data: every tensor's
/// `data` is a view into the one reassembled buffer, which stays alive as long as any tensor
/// refers to it.
///
/// Follows the protobuf binary format: unknown fields are skipped, a repeated `shape` may be
/// packed or not, and the last value of a scalar field wins. Used for reassembled chunked
/// payloads, where SwiftProtobuf's decoder would copy tens of megabytes once more.
enum TensorSetParser {
    /// - Throws: `WireError.invalidTensorSet` naming what is malformed.
    static func parse(_ buffer: ByteBuffer) throws -> Fedkit_V1_TensorSet {
        var reader = buffer
        var set = Fedkit_V1_TensorSet()
        while reader.readableBytes > 0 {
            let (field, wireType) = try readTag(&reader)
            if field == 1 && wireType == 2 {
                var tensorBytes = try readLengthDelimited(&reader)
                set.tensors.append(try parseTensor(&tensorBytes))
            } else {
                try skip(wireType: wireType, in: &reader)
            }
        }
        return set
    }

    private static func parseTensor(_ reader: inout ByteBuffer) throws -> Fedkit_V1_Tensor {
        var tensor = Fedkit_V1_Tensor()
        while reader.readableBytes > 0 {
            let (field, wireType) = try readTag(&reader)
            switch (field, wireType) {
            case (1, 2):
                let bytes = try readLengthDelimited(&reader)
                guard let name = bytes.getString(at: bytes.readerIndex, length: bytes.readableBytes),
                      String(validating: bytes.readableBytesView, as: UTF8.self) != nil else {
                    throw WireError.invalidTensorSet(reason: "tensor name is not valid UTF-8")
                }
                tensor.name = name
            case (2, 2):
                var packed = try readLengthDelimited(&reader)
                while packed.readableBytes > 0 { tensor.shape.append(Int64(bitPattern: try readVarint(&packed))) }
            case (2, 0):
                tensor.shape.append(Int64(bitPattern: try readVarint(&reader)))
            case (3, 0):
                tensor.dtype = DType(rawValue: Int(Int32(truncatingIfNeeded: try readVarint(&reader)))) ?? .unspecified
            case (4, 2):
                let bytes = try readLengthDelimited(&reader)
                tensor.data = bytes.getData(at: bytes.readerIndex, length: bytes.readableBytes, byteTransferStrategy: .noCopy) ?? Data()
            default:
                try skip(wireType: wireType, in: &reader)
            }
        }
        return tensor
    }

    private static func readTag(_ reader: inout ByteBuffer) throws -> (field: UInt64, wireType: UInt64) {
        let tag = try readVarint(&reader)
        guard tag >> 3 != 0 else { throw WireError.invalidTensorSet(reason: "field number 0") }
        return (tag >> 3, tag & 7)
    }

    private static func readVarint(_ reader: inout ByteBuffer) throws -> UInt64 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while let byte = reader.readInteger(as: UInt8.self) {
            guard shift < 64 else { break }
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
        throw WireError.invalidTensorSet(reason: "truncated or overlong varint")
    }

    private static func readLengthDelimited(_ reader: inout ByteBuffer) throws -> ByteBuffer {
        let length = try readVarint(&reader)
        guard length <= UInt64(reader.readableBytes), let slice = reader.readSlice(length: Int(length)) else {
            throw WireError.invalidTensorSet(reason: "field of \(length) bytes overruns its message")
        }
        return slice
    }

    private static func skip(wireType: UInt64, in reader: inout ByteBuffer) throws {
        switch wireType {
        case 0: _ = try readVarint(&reader)
        case 1: guard reader.readSlice(length: 8) != nil else { throw WireError.invalidTensorSet(reason: "truncated fixed64") }
        case 2: _ = try readLengthDelimited(&reader)
        case 5: guard reader.readSlice(length: 4) != nil else { throw WireError.invalidTensorSet(reason: "truncated fixed32") }
        default: throw WireError.invalidTensorSet(reason: "unsupported wire type \(wireType)")
        }
    }
}
