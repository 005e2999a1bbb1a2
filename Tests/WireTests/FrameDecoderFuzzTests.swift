import Foundation
import Tensor
import FuzzCorpusStore
import NIOCore
import NIOEmbedded
import XCTest
@testable import Wire

/// Feeds seeded random and mutated frames to the decoder for a fixed time
/// (`FEDKIT_FUZZ_SECONDS`, default 10 s per loop), seeded from every file of the committed
/// corpus `Tests/FuzzCorpus/frames`: it must never crash or hang, must never hold more than one
/// maximum frame, and must only ever produce envelopes or named `WireError`s.
final class FrameDecoderFuzzTests: XCTestCase {
    private let maximumFrameSize = FuzzCorpus.maximumFrameSize

    private func seeds() throws -> [[UInt8]] {
        let files = try FuzzCorpusStore.files(in: "frames")
        XCTAssertGreaterThanOrEqual(files.count, Samples.everyKind().count, "the frames corpus is missing files")
        return files.map(\.bytes)
    }

    /// Rewrites `Tests/FuzzCorpus/frames` when `FEDKIT_WRITE_CORPUS=1`.
    func testWriteFramesCorpus() throws {
        try XCTSkipUnless(FuzzCorpusStore.rewriting, "set FEDKIT_WRITE_CORPUS=1 to rewrite Tests/FuzzCorpus/frames")
        try FuzzCorpusStore.write(try FuzzCorpus.frames(), to: "frames")
    }

    /// Every corpus file, un-mutated, gives the verdict its name states, frame by frame and
    /// through the channel pipeline.
    func testEveryCorpusFrameGivesItsVerdict() throws {
        let codec = FrameCodec(maximumFrameSize: maximumFrameSize)
        for (name, bytes) in try FuzzCorpusStore.files(in: "frames") {
            let parts = name.dropLast(".bin".count).split(separator: "-").map(String.init)
            var buffer = ByteBuffer(bytes: bytes)
            var frames = 0
            var frameError: WireError?
            do {
                while let _ = try codec.decodeFrame(from: &buffer) { frames += 1 }
            } catch let error as WireError { frameError = error }

            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addFrameCodec(maximumFrameSize: maximumFrameSize)
            try channel.pipeline.syncOperations.addHandler(PayloadChunkingHandler())
            var streamError: WireError?
            do {
                try channel.writeInbound(ByteBuffer(bytes: bytes))
                _ = try channel.finish()
            } catch let error as WireError { streamError = error }
            var delivered: [Envelope] = []
            while let e = try? channel.readInbound(as: Envelope.self) { delivered.append(e) }

            switch parts[0] {
            case "ok":
                XCTAssertNil(frameError, name); XCTAssertNil(streamError, name)
                XCTAssertEqual(buffer.readableBytes, 0, "\(name): bytes left after the last frame")
                XCTAssertGreaterThan(delivered.count, 0, name)
                if name.contains("chunked") {
                    XCTAssertEqual(frames, 4, name)
                    let original = Samples.everyKind().first { if case .fitResult = $0.body { true } else { false } }!
                    XCTAssertEqual(delivered, [original], "\(name): the reassembled FitResult differs from the one sent")
                }
            case "frame":
                let expected = parts[2]
                if expected == "truncatedFrame" {
                    XCTAssertNil(frameError, name)
                    XCTAssertGreaterThan(buffer.readableBytes, 0, "\(name): the decoder must wait for the rest of the frame")
                } else {
                    XCTAssertEqual(frameError.map(FuzzCorpus.caseName), expected, name)
                }
                XCTAssertEqual(streamError.map(FuzzCorpus.caseName), expected, name)
            case "stream":
                XCTAssertNil(frameError, name)
                XCTAssertEqual(buffer.readableBytes, 0, name)
                XCTAssertEqual(streamError.map(FuzzCorpus.caseName), parts[2], name)
                XCTAssertFalse(delivered.contains { if case .fitResult = $0.body { true } else { false } },
                               "\(name): a payload that failed reassembly was delivered")
            default:
                XCTFail("\(name): the name does not state a verdict (ok-, frame-error-, stream-error-)")
            }
        }
    }

    func testRandomAndMutatedFramesNeverCrashOrHoldMoreThanOneFrame() throws {
        let seeds = try seeds()
        let codec = FrameCodec(maximumFrameSize: maximumFrameSize)
        var rng = SplitMix64(seed: 0xFED_C0DE)
        var decodedCount = 0, errorCount = 0, iterations = 0
        let deadline = Date().addingTimeInterval(FuzzCorpusStore.seconds)
        while Date() < deadline || iterations < 1000 {
            iterations += 1
            let input: [UInt8]
            if iterations % 4 == 0 {
                input = (0..<Int(rng.next() % 256)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
            } else {
                input = FrameMutator.mutate(seeds[Int(rng.next() % UInt64(seeds.count))], rng: &rng)
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
        XCTAssertGreaterThan(decodedCount, iterations / 10, "mutations should still leave many decodable frames")
        XCTAssertGreaterThan(errorCount, iterations / 10, "mutations should be rejected often")
        print("frame decoder fuzz: \(iterations) inputs in \(FuzzCorpusStore.seconds) s from \(seeds.count) corpus files, \(decodedCount) frames decoded, \(errorCount) refused")
    }

    func testMutatedStreamsThroughTheChannelEndInEnvelopesOrNamedErrors() throws {
        let seeds = try seeds()
        var rng = SplitMix64(seed: 42)
        var iterations = 0, delivered = 0, refused = 0
        let deadline = Date().addingTimeInterval(FuzzCorpusStore.seconds)
        while Date() < deadline || iterations < 100 {
            iterations += 1
            let channel = EmbeddedChannel()
            try channel.pipeline.syncOperations.addFrameCodec(maximumFrameSize: maximumFrameSize)
            try channel.pipeline.syncOperations.addHandler(PayloadChunkingHandler())
            var stream: [UInt8] = []
            for _ in 0..<(1 + rng.next() % 5) {
                let seed = seeds[Int(rng.next() % UInt64(seeds.count))]
                stream += rng.next() % 3 == 0 ? FrameMutator.mutate(seed, rng: &rng) : seed
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
            while let e = try channel.readInbound(as: Envelope.self) {
                delivered += 1
                // A payload reaches the session handler only reassembled and with well-formed tensors.
                switch e.payload?.content {
                case .chunked?: XCTFail("a chunked reference was delivered")
                case .inline(let set)?: XCTAssertNoThrow(try set.wireTensors())
                case nil: break
                }
            }
            do { _ = try channel.finish() } catch is WireError { failed = true }
            if failed { refused += 1 }
        }
        XCTAssertGreaterThan(delivered, iterations / 4, "the streams should still deliver many envelopes")
        XCTAssertGreaterThan(refused, iterations / 10)
        print("channel pipeline fuzz: \(iterations) streams in \(FuzzCorpusStore.seconds) s, \(delivered) envelopes delivered, \(refused) streams refused with a named error")
    }
}

/// The chunk fast path must decode exactly what SwiftProtobuf decodes, or step aside.
final class ChunkFastPathTests: XCTestCase {
    func testFastPathAgreesWithSwiftProtobufOnMutatedChunkFrames() throws {
        var rng = SplitMix64(seed: 2024)
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
