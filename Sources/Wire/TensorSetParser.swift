import Foundation
import NIOCore

/// Parses a serialized `fedkit.v1.TensorSet` without copying tensor data: every tensor's
/// `data` is a view into the one reassembled buffer, which stays alive as long as any tensor
/// refers to it (and so does `owner`, when given: the receive permit behind the buffer is
/// given back only when the last view of it is gone).
///
/// Follows the protobuf binary format: unknown fields are skipped, a repeated `shape` may be
/// packed or not, and the last value of a scalar field wins. Used for reassembled chunked
/// payloads, where SwiftProtobuf's decoder would copy tens of megabytes once more. Reads by
/// offset into the buffer, never through `ByteBuffer` slices (a slice starting past 16 MiB
/// is a copy).
enum TensorSetParser {
    /// - Throws: `WireError.invalidTensorSet` naming what is malformed.
    static func parse(_ buffer: ByteBuffer, owner: AnyObject? = nil) throws -> Fedkit_V1_TensorSet {
        try buffer.withUnsafeReadableBytes { raw in
            var reader = Cursor(bytes: raw, position: 0, end: raw.count)
            var set = Fedkit_V1_TensorSet()
            while !reader.atEnd {
                let (field, wireType) = try reader.readTag()
                if field == 1 && wireType == 2 {
                    var tensorBytes = try reader.readLengthDelimited()
                    set.tensors.append(try parseTensor(&tensorBytes, buffer: buffer, owner: owner))
                } else {
                    try reader.skip(wireType: wireType)
                }
            }
            return set
        }
    }

    private static func parseTensor(_ reader: inout Cursor, buffer: ByteBuffer, owner: AnyObject?) throws -> Fedkit_V1_Tensor {
        var tensor = Fedkit_V1_Tensor()
        while !reader.atEnd {
            let (field, wireType) = try reader.readTag()
            if field == 4 && wireType == 2 {
                let bytes = try reader.readLengthDelimited()
                tensor.data = bytes.count == 0 ? Data() : Data(
                    bytesNoCopy: UnsafeMutableRawPointer(mutating: bytes.bytes.baseAddress! + bytes.position),
                    count: bytes.count,
                    deallocator: .custom { _, _ in withExtendedLifetime((buffer, owner)) {} })
            } else {
                try readHeaderField(field, wireType, &reader, into: &tensor)
            }
        }
        return tensor
    }

    /// Reads one field of a `Tensor` other than its data into `tensor`: name, shape (packed
    /// or not), dtype; any other field is skipped.
    static func readHeaderField(_ field: UInt64, _ wireType: UInt64, _ reader: inout Cursor, into tensor: inout Fedkit_V1_Tensor) throws {
        switch (field, wireType) {
        case (1, 2):
            let bytes = try reader.readLengthDelimited()
            guard let name = String(validating: bytes.view, as: UTF8.self) else {
                throw WireError.invalidTensorSet(reason: "tensor name is not valid UTF-8")
            }
            tensor.name = name
        case (2, 2):
            var packed = try reader.readLengthDelimited()
            while !packed.atEnd { tensor.shape.append(Int64(bitPattern: try packed.readVarint())) }
        case (2, 0):
            tensor.shape.append(Int64(bitPattern: try reader.readVarint()))
        case (3, 0):
            tensor.dtype = DType(rawValue: Int(Int32(truncatingIfNeeded: try reader.readVarint()))) ?? .unspecified
        default:
            try reader.skip(wireType: wireType)
        }
    }

    /// A read position in `bytes[position..<end]`.
    struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var position: Int
        let end: Int

        var atEnd: Bool { position >= end }
        var count: Int { end - position }
        var view: UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: bytes[position..<end]) }

        mutating func readTag() throws -> (field: UInt64, wireType: UInt64) {
            let tag = try readVarint()
            guard tag >> 3 != 0 else { throw WireError.invalidTensorSet(reason: "field number 0") }
            return (tag >> 3, tag & 7)
        }

        mutating func readVarint() throws -> UInt64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while position < end {
                let byte = bytes[position]
                position += 1
                guard shift < 64 else { break }
                value |= UInt64(byte & 0x7F) << shift
                if byte & 0x80 == 0 { return value }
                shift += 7
            }
            throw WireError.invalidTensorSet(reason: "truncated or overlong varint")
        }

        /// The next `length` bytes as a cursor of their own; this one moves past them.
        mutating func readLengthDelimited() throws -> Cursor {
            let length = try readVarint()
            guard length <= UInt64(count) else {
                throw WireError.invalidTensorSet(reason: "field of \(length) bytes overruns its message")
            }
            let field = Cursor(bytes: bytes, position: position, end: position + Int(length))
            position += Int(length)
            return field
        }

        mutating func skipBytes(_ n: Int, _ what: String) throws {
            guard n <= count else { throw WireError.invalidTensorSet(reason: "truncated \(what)") }
            position += n
        }

        mutating func skip(wireType: UInt64) throws {
            switch wireType {
            case 0: _ = try readVarint()
            case 1: try skipBytes(8, "fixed64")
            case 2: _ = try readLengthDelimited()
            case 5: try skipBytes(4, "fixed32")
            default: throw WireError.invalidTensorSet(reason: "unsupported wire type \(wireType)")
            }
        }
    }
}
