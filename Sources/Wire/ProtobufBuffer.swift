import NIOCore
import SwiftProtobuf

/// A `ByteBuffer` that SwiftProtobuf can serialize into and parse from without copying.
///
/// Serialization allocates `headroom` spare bytes in front of the message so that a frame
/// header can be written in place afterwards.
struct ProtobufBuffer: SwiftProtobufContiguousBytes {
    /// Readable bytes are the serialized message (plus headroom before the reader index).
    var buffer: ByteBuffer

    /// Bytes reserved in front of every buffer created by SwiftProtobuf: the frame header.
    static let headroom = FrameCodec.headerSize

    init(wrapping buffer: ByteBuffer) {
        self.buffer = buffer
    }

    init(repeating: UInt8, count: Int) {
        var buffer = ByteBufferAllocator().buffer(capacity: count + Self.headroom)
        if repeating == 0 && count >= Self.uninitializedThreshold {
            // SwiftProtobuf creates its output buffer this way and then overwrites every byte
            // (it asserts so): skip filling megabytes that are about to be written anyway.
            buffer.moveWriterIndex(forwardBy: count + Self.headroom)
        } else {
            buffer.writeRepeatingByte(repeating, count: count + Self.headroom)
        }
        buffer.moveReaderIndex(forwardBy: Self.headroom)
        self.buffer = buffer
    }

    /// Buffers at least this large are not zero-filled before serialization.
    static let uninitializedThreshold = 64 << 10

    init<S: Sequence>(_ sequence: S) where S.Element == UInt8 {
        self.buffer = ByteBuffer(bytes: sequence)
    }

    var count: Int { buffer.readableBytes }

    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeReadableBytes(body)
    }

    mutating func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try buffer.withUnsafeMutableReadableBytes(body)
    }
}
