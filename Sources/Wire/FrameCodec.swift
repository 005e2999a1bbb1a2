import NIOCore
import SwiftProtobuf

/// Length-prefixed framing of `Envelope`s: a 4-byte big-endian length N, then N bytes of one
/// serialized `Envelope`.
///
/// One type is both the decoder and the encoder; install it as
/// `ByteToMessageHandler(FrameCodec(...))` and `MessageToByteHandler(FrameCodec(...))`, or with
/// `ChannelPipeline.SynchronousOperations.addFrameCodec(maximumFrameSize:)`.
///
/// The decoder never buffers more than `maximumFrameSize + 4` bytes: a header announcing a larger
/// frame throws `WireError.frameTooLarge` at once, before the body arrives. A frame that is not a
/// valid `Envelope` throws `WireError.invalidEnvelope`; a stream that ends inside a frame throws
/// `WireError.truncatedFrame`. After any error the handler discards further input.
public struct FrameCodec: ByteToMessageDecoder, MessageToByteEncoder, Sendable {
    public typealias InboundOut = Envelope
    public typealias OutboundIn = Envelope

    /// Size of the length prefix in bytes.
    public static let headerSize = 4
    /// Default hard limit on one frame's body: 16 MiB.
    public static let defaultMaximumFrameSize = 16 << 20

    /// Largest frame body, in bytes, this codec decodes or encodes.
    public let maximumFrameSize: Int

    /// Creates a codec.
    /// - Parameter maximumFrameSize: Largest frame body in bytes, at most `UInt32.max`.
    public init(maximumFrameSize: Int = FrameCodec.defaultMaximumFrameSize) {
        precondition(maximumFrameSize >= 0 && maximumFrameSize <= Int(UInt32.max), "maximumFrameSize out of range")
        self.maximumFrameSize = maximumFrameSize
    }

    // MARK: Decoding

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let envelope = try decodeFrame(from: &buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(envelope))
        return .continue
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        if let envelope = try decodeFrame(from: &buffer) {
            context.fireChannelRead(Self.wrapInboundOut(envelope))
            return .continue
        }
        if buffer.readableBytes > 0 {
            let expected = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self).map { Int($0) + Self.headerSize } ?? Self.headerSize
            let received = buffer.readableBytes
            buffer.moveReaderIndex(to: buffer.writerIndex)
            throw WireError.truncatedFrame(expected: expected, received: received)
        }
        return .needMoreData
    }

    /// Reads one complete frame from `buffer` if it holds one.
    /// - Returns: The decoded envelope, or `nil` when more bytes are needed (nothing consumed).
    /// - Throws: `WireError.frameTooLarge` or `WireError.invalidEnvelope`.
    public func decodeFrame(from buffer: inout ByteBuffer) throws -> Envelope? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self) else { return nil }
        guard length <= maximumFrameSize else {
            throw WireError.frameTooLarge(length: Int(length), limit: maximumFrameSize)
        }
        guard buffer.readableBytes >= Self.headerSize + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: Self.headerSize)
        let body = buffer.readSlice(length: Int(length))!
        if let chunk = Self.decodeChunkEnvelope(body) { return chunk }  // large payload slices: no copy
        do {
            return try Envelope(serializedBytes: ProtobufBuffer(wrapping: body))
        } catch {
            throw WireError.invalidEnvelope(length: Int(length), reason: "\(error)")
        }
    }

    // MARK: Encoding

    public func encode(data envelope: Envelope, out: inout ByteBuffer) throws {
        out = try encodeFrame(envelope)
    }

    /// Serializes `envelope` into a new buffer holding its whole frame (header and body).
    /// - Throws: `WireError.frameTooLarge` when the body exceeds `maximumFrameSize`,
    ///   `WireError.encodingFailed` when SwiftProtobuf refuses the message.
    public func encodeFrame(_ envelope: Envelope) throws -> ByteBuffer {
        // The buffer is taken out of the temporary wrapper, never held twice: writing the
        // header into a buffer still referenced elsewhere would copy the whole frame.
        var frame: ByteBuffer
        do {
            frame = try (envelope.serializedBytes() as ProtobufBuffer).buffer
        } catch {
            throw WireError.encodingFailed(kind: envelope.kind, reason: "\(error)")
        }
        let length = frame.readableBytes
        guard length <= maximumFrameSize else {
            throw WireError.frameTooLarge(length: length, limit: maximumFrameSize)
        }
        // SwiftProtobuf allocated the buffer through ProtobufBuffer, which left room for the header.
        precondition(frame.readerIndex >= Self.headerSize, "serialized buffer lacks header room")
        frame.moveReaderIndex(to: frame.readerIndex - Self.headerSize)
        frame.setInteger(UInt32(length), at: frame.readerIndex)
        return frame
    }
}

extension ChannelPipeline.SynchronousOperations {
    /// Adds the frame decoder and encoder for `Envelope`s.
    /// - Parameter maximumFrameSize: Largest frame body in bytes accepted or sent.
    public func addFrameCodec(maximumFrameSize: Int = FrameCodec.defaultMaximumFrameSize) throws {
        let codec = FrameCodec(maximumFrameSize: maximumFrameSize)
        try addHandler(ByteToMessageHandler(codec))
        try addHandler(MessageToByteHandler(codec))
    }
}
