import Foundation
import NIOCore
import NIOEmbedded
import XCTest
@testable import Wire

final class FrameCodecTests: XCTestCase {
    /// A channel with the frame codec only.
    private func makeChannel(maximumFrameSize: Int = FrameCodec.defaultMaximumFrameSize) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addFrameCodec(maximumFrameSize: maximumFrameSize)
        return channel
    }

    /// Writes `envelope` on a sender channel and returns the bytes it put on the wire.
    private func encode(_ envelope: Envelope, on channel: EmbeddedChannel) throws -> ByteBuffer {
        try channel.writeOutbound(envelope)
        var wire = ByteBuffer()
        while var part = try channel.readOutbound(as: ByteBuffer.self) { wire.writeBuffer(&part) }
        return wire
    }

    func testEveryMessageKindRoundTrips() throws {
        let sender = try makeChannel()
        let receiver = try makeChannel()
        for envelope in Samples.everyKind() {
            let wire = try encode(envelope, on: sender)
            XCTAssertEqual(wire.getInteger(at: 0, as: UInt32.self).map(Int.init), wire.readableBytes - 4, "length prefix of \(envelope.kind)")
            try receiver.writeInbound(wire)
            let decoded = try XCTUnwrap(try receiver.readInbound(as: Envelope.self), "no \(envelope.kind) decoded")
            XCTAssertEqual(decoded, envelope, "\(envelope.kind) changed in transit")
        }
        XCTAssertNil(try receiver.readInbound(as: Envelope.self))
        XCTAssertEqual(Set(Samples.everyKind().map(\.kind)).count, 11)
        _ = try sender.finish()
        _ = try receiver.finish()
    }

    func testEmptyEnvelopeIsAFourByteFrame() throws {
        let channel = try makeChannel()
        let wire = try encode(Envelope(), on: channel)
        XCTAssertEqual(Array(wire.readableBytesView), [0, 0, 0, 0])
        try channel.writeInbound(wire)
        XCTAssertEqual(try channel.readInbound(as: Envelope.self), Envelope())
    }

    func testFramesSplitAtEveryByteAndCoalescedDecode() throws {
        let sender = try makeChannel()
        var stream = ByteBuffer()
        let envelopes = Samples.everyKind()
        for envelope in envelopes {
            var wire = try encode(envelope, on: sender)
            stream.writeBuffer(&wire)
        }
        // One byte at a time.
        let receiver = try makeChannel()
        for byte in stream.readableBytesView {
            try receiver.writeInbound(ByteBuffer(bytes: [byte]))
        }
        var decoded: [Envelope] = []
        while let envelope = try receiver.readInbound(as: Envelope.self) { decoded.append(envelope) }
        XCTAssertEqual(decoded, envelopes)
        // All at once.
        let receiver2 = try makeChannel()
        try receiver2.writeInbound(stream)
        decoded = []
        while let envelope = try receiver2.readInbound(as: Envelope.self) { decoded.append(envelope) }
        XCTAssertEqual(decoded, envelopes)
    }

    func testHeaderAnnouncingMoreThanTheMaximumFailsBeforeTheBodyArrives() throws {
        let channel = try makeChannel(maximumFrameSize: 1024)
        var header = ByteBuffer()
        header.writeInteger(UInt32(1025))
        XCTAssertThrowsError(try channel.writeInbound(header)) { error in
            XCTAssertEqual(error as? WireError, .frameTooLarge(length: 1025, limit: 1024))
            XCTAssertEqual("\(error)", "frame header announces 1025 bytes, more than the maximum frame size of 1024 bytes")
        }
    }

    func testFrameOfExactlyTheMaximumIsAccepted() throws {
        var envelope = Envelope(.chunk(.with { $0.transferID = 1; $0.data = Data(repeating: 7, count: 100) }))
        envelope.sequence = 1
        let size = try (envelope.serializedBytes() as [UInt8]).count
        let channel = try makeChannel(maximumFrameSize: size)
        let wire = try encode(envelope, on: channel)
        try channel.writeInbound(wire)
        XCTAssertEqual(try channel.readInbound(as: Envelope.self), envelope)

        let smaller = try makeChannel(maximumFrameSize: size - 1)
        XCTAssertThrowsError(try smaller.writeOutbound(envelope)) { error in
            XCTAssertEqual(error as? WireError, .frameTooLarge(length: size, limit: size - 1))
        }
    }

    func testInvalidEnvelopeIsANamedError() throws {
        let channel = try makeChannel()
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(3))
        frame.writeBytes([0xFF, 0xFF, 0xFF])  // field 0x1FFF..., wire type 7: not protobuf
        XCTAssertThrowsError(try channel.writeInbound(frame)) { error in
            guard case .invalidEnvelope(length: 3, reason: _)? = error as? WireError else {
                return XCTFail("expected invalidEnvelope, got \(error)")
            }
        }
    }

    func testStreamEndingInsideAFrameIsTruncated() throws {
        let channel = try makeChannel()
        var frame = ByteBuffer()
        frame.writeInteger(UInt32(10))
        frame.writeBytes([0x08, 0x01])
        try channel.writeInbound(frame)
        XCTAssertNil(try channel.readInbound(as: Envelope.self))
        XCTAssertThrowsError(try channel.finish()) { error in
            XCTAssertEqual(error as? WireError, .truncatedFrame(expected: 14, received: 6))
        }
    }

    func testTensorBytesAreLittleEndianFloat32() throws {
        let tensor = WireTensor(name: "w", shape: [2], floats: [1.0, -2.0])
        XCTAssertEqual(Array(tensor.bytes), [0x00, 0x00, 0x80, 0x3F, 0x00, 0x00, 0x00, 0xC0])
        XCTAssertEqual(try tensor.floats(), [1.0, -2.0])
    }

    func testTensorValidationNamesTheTensor() throws {
        XCTAssertThrowsError(try WireTensor(name: "fc.bias", shape: [3], dtype: .float32, bytes: Data(count: 8))) { error in
            XCTAssertEqual(error as? WireError, .tensorSizeMismatch(tensor: "fc.bias", shape: [3], expectedBytes: 12, actualBytes: 8))
        }
        XCTAssertThrowsError(try WireTensor(name: "x", shape: [1], dtype: .unspecified, bytes: Data(count: 4))) { error in
            XCTAssertEqual(error as? WireError, .unsupportedDType(tensor: "x", dtype: 0))
        }
        XCTAssertThrowsError(try WireTensor(name: "y", shape: [-1], dtype: .float32, bytes: Data())) { error in
            XCTAssertEqual(error as? WireError, .invalidShape(tensor: "y", shape: [-1]))
        }
        let ints = try WireTensor(name: "steps", shape: [1], dtype: .int64, bytes: Data(count: 8))
        XCTAssertThrowsError(try ints.floats())
    }
}
