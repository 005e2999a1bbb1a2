import NIOCore
import NIOEmbedded
import XCTest
@testable import Transport

/// `TLSWriteSlicer` on `EmbeddedChannel`: large writes reach the TLS side as flushed slices.
final class TLSWriteSlicerTests: XCTestCase {
    private func makeChannel(sliceSize: Int) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(TLSWriteSlicer(sliceSize: sliceSize))
        return channel
    }

    private func outbound(_ channel: EmbeddedChannel) throws -> [[UInt8]] {
        var out: [[UInt8]] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) { out.append(Array(buffer.readableBytesView)) }
        return out
    }

    func testLargeWriteIsSlicedAndFlushedSliceBySlice() throws {
        let channel = try makeChannel(sliceSize: 4)
        let promise = channel.eventLoop.makePromise(of: Void.self)
        channel.write(ByteBuffer(bytes: Array(0..<10)), promise: promise)
        // Every slice but the last was flushed by the slicer; the last waits for the caller's flush.
        XCTAssertEqual(try outbound(channel), [[0, 1, 2, 3], [4, 5, 6, 7]])
        channel.flush()
        XCTAssertEqual(try outbound(channel), [[8, 9]])
        XCTAssertNoThrow(try promise.futureResult.wait())
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testSmallWritePassesUnchanged() throws {
        let channel = try makeChannel(sliceSize: 4)
        channel.write(ByteBuffer(bytes: [1, 2, 3, 4]), promise: nil)
        XCTAssertEqual(try outbound(channel), [])
        channel.flush()
        XCTAssertEqual(try outbound(channel), [[1, 2, 3, 4]])
        XCTAssertTrue(try channel.finish().isClean)
    }

    func testExactMultipleEndsWithTheCallersFlush() throws {
        let channel = try makeChannel(sliceSize: 3)
        channel.writeAndFlush(ByteBuffer(bytes: Array(0..<6)), promise: nil)
        XCTAssertEqual(try outbound(channel), [[0, 1, 2], [3, 4, 5]])
        XCTAssertTrue(try channel.finish().isClean)
    }
}
