import Foundation
import NIOCore
import NIOEmbedded
import XCTest
@testable import Wire

/// Feeds thousands of seeded random and mutated frames to the decoder: it must never crash or
/// hang, must never hold more than one maximum frame, and must only ever produce envelopes or
/// named `WireError`s.
final class FrameDecoderFuzzTests: XCTestCase {
    private let maximumFrameSize = 64 << 10

    /// Valid frames of every kind, the seeds of the mutations.
    private func seedFrames() throws -> [[UInt8]] {
        let codec = FrameCodec(maximumFrameSize: maximumFrameSize)
        return try Samples.everyKind().map { Array(try codec.encodeFrame($0).readableBytesView) }
    }

    private func mutate(_ frame: [UInt8], rng: inout SeededGenerator) -> [UInt8] {
        var bytes = frame
        switch rng.next() % 6 {
        case 0:  // flip a few bits anywhere
            for _ in 0..<(1 + Int(rng.next() % 4)) where !bytes.isEmpty {
                bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 << (rng.next() % 8))
            }
        case 1:  // overwrite a byte of the body with an extreme value
            if bytes.count > 4 { bytes[4 + Int(rng.next() % UInt64(bytes.count - 4))] = [0x00, 0xFF, 0x80, 0x7F][Int(rng.next() % 4)] }
        case 2:  // truncate the body but keep the header
            bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
        case 3:  // random garbage of random length behind a truthful header
            let n = Int(rng.next() % 512)
            bytes = withUnsafeBytes(of: UInt32(n).bigEndian, Array.init) + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 4:  // random header
            let length = UInt32(truncatingIfNeeded: rng.next())
            withUnsafeBytes(of: length.bigEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
        default:  // insert random bytes into the body
            let at = 4 + Int(rng.next() % UInt64(max(bytes.count - 3, 1)))
            bytes.insert(contentsOf: (0..<Int(1 + rng.next() % 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: min(at, bytes.count))
        }
        return bytes
    }

    func testRandomAndMutatedFramesNeverCrashOrHoldMoreThanOneFrame() throws {
        let seeds = try seedFrames()
        let codec = FrameCodec(maximumFrameSize: maximumFrameSize)
        var rng = SeededGenerator(seed: 0xFED_C0DE)
        var decodedCount = 0, errorCount = 0
        for iteration in 0..<4000 {
            let input: [UInt8]
            if iteration % 4 == 0 {
                input = (0..<Int(rng.next() % 256)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                input = mutate(seeds[Int(rng.next() % UInt64(seeds.count))], rng: &rng)
            }
            var buffer = ByteBuffer(bytes: input)
            do {
                // The decoder either consumes a frame, asks for more without consuming, or throws.
                while buffer.readableBytes > 0 {
                    let before = buffer.readableBytes
                    guard let _ = try codec.decodeFrame(from: &buffer) else {
                        XCTAssertEqual(buffer.readableBytes, before, "needMoreData must not consume bytes")
                        XCTAssertLessThan(buffer.readableBytes, maximumFrameSize + FrameCodec.headerSize)
                        break
                    }
                    XCTAssertLessThan(buffer.readableBytes, before)
                    decodedCount += 1
                }
            } catch let error as WireError {
                switch error {
                case .frameTooLarge(let length, let limit):
                    XCTAssertGreaterThan(length, limit)
                case .invalidEnvelope: break
                default: XCTFail("unexpected error \(error)")
                }
                errorCount += 1
            }
        }
        XCTAssertGreaterThan(decodedCount, 100, "mutations should still leave many decodable frames")
        XCTAssertGreaterThan(errorCount, 100, "mutations should be rejected often")
    }

    func testMutatedStreamsThroughTheChannelEndInEnvelopesOrNamedErrors() throws {
        let seeds = try seedFrames()
        var rng = SeededGenerator(seed: 42)
        for _ in 0..<300 {
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addFrameCodec(maximumFrameSize: maximumFrameSize)
            try channel.pipeline.syncOperations.addHandler(PayloadChunkingHandler())
            var stream: [UInt8] = []
            for _ in 0..<(1 + rng.next() % 5) {
                let seed = seeds[Int(rng.next() % UInt64(seeds.count))]
                stream += rng.next() % 3 == 0 ? mutate(seed, rng: &rng) : seed
            }
            var failed = false
            var offset = 0
            while offset < stream.count && !failed {  // deliver in random pieces
                let n = min(stream.count - offset, 1 + Int(rng.next() % 64))
                do {
                    try channel.writeInbound(ByteBuffer(bytes: stream[offset..<offset + n]))
                } catch is WireError {
                    failed = true
                }
                offset += n
            }
            while let _ = try channel.readInbound(as: Envelope.self) {}
            do { _ = try channel.finish() } catch is WireError {}
        }
    }
}

/// The chunk fast path must decode exactly what SwiftProtobuf decodes, or step aside.
final class ChunkFastPathTests: XCTestCase {
    func testFastPathAgreesWithSwiftProtobufOnMutatedChunkFrames() throws {
        var rng = SeededGenerator(seed: 2024)
        var taken = 0
        for iteration in 0..<3000 {
            var chunk = Fedkit_V1_PayloadChunk()
            chunk.transferID = rng.next() % 3 == 0 ? rng.next() : rng.next() % 100
            chunk.index = UInt32(truncatingIfNeeded: rng.next() % 5 == 0 ? rng.next() : rng.next() % 50)
            chunk.data = Data((0..<Int(rng.next() % 40)).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            if rng.next() % 2 == 0 { chunk.totalBytes = rng.next() % 1_000_000 }
            var envelope = Envelope(.chunk(chunk))
            if rng.next() % 2 == 0 { envelope.sequence = rng.next() % 1000 }
            var bytes: [UInt8] = try envelope.serializedBytes()
            if iteration % 2 == 1 {  // mutate
                for _ in 0..<(1 + Int(rng.next() % 3)) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            let fast = FrameCodec.decodeChunkEnvelope(ByteBuffer(bytes: bytes))
            let reference = try? Envelope(serializedBytes: bytes)
            if iteration % 2 == 0 {
                XCTAssertEqual(fast, envelope, "fast path must take every well-formed chunk envelope")
            }
            if let fast {
                taken += 1
                XCTAssertEqual(fast, reference, "fast path disagrees on \(bytes)")
            }
        }
        XCTAssertGreaterThan(taken, 1500)
    }
}
