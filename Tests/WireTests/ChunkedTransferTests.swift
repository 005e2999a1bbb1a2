import Crypto
import Foundation
import NIOCore
import NIOEmbedded
import XCTest
@testable import Wire

final class ChunkedTransferTests: XCTestCase {
    /// Codec plus chunking, as Transport installs them.
    private func makeChannel(chunker: PayloadChunker = PayloadChunker(), assembler: PayloadAssembler = PayloadAssembler()) throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addFrameCodec()
        try channel.pipeline.syncOperations.addHandler(PayloadChunkingHandler(chunker: chunker, assembler: assembler))
        return channel
    }

    func drainOutbound(_ channel: EmbeddedChannel) throws -> [ByteBuffer] {
        var frames: [ByteBuffer] = []
        while let frame = try channel.readOutbound(as: ByteBuffer.self) { frames.append(frame) }
        return frames
    }

    /// A digit-model-sized set of tensors: ~3 M floats, 12 MB.
    func bigTensors() -> [WireTensor] {
        [
            WireTensor(name: "conv1.weight", shape: [64, 3, 5, 5], floats: Samples.floats(64 * 75, seed: 10)),
            WireTensor(name: "fc1.weight", shape: [2048, 1400], floats: Samples.floats(2048 * 1400, seed: 11)),
            WireTensor(name: "fc1.bias", shape: [2048], floats: Samples.floats(2048, seed: 12)),
            try! WireTensor(name: "bn1.num_batches_tracked", shape: [], dtype: .int64, bytes: Data([5, 0, 0, 0, 0, 0, 0, 0])),
        ]
    }

    func testMultiFrameModelIsReassembledBitExactly() throws {
        let tensors = bigTensors()
        let fit = Envelope(.fitRequest(.with { $0.round = 3; $0.parameters = Fedkit_V1_Payload(tensors) }))
        let sender = try makeChannel(chunker: PayloadChunker(chunkSize: 1 << 20))
        try sender.writeOutbound(fit)
        let frames = try drainOutbound(sender)
        XCTAssertGreaterThan(frames.count, 10, "a 12 MB model must travel as several frames")
        XCTAssertTrue(frames.allSatisfy { $0.readableBytes <= FrameCodec.defaultMaximumFrameSize + 4 })

        let receiver = try makeChannel()
        for frame in frames.dropLast() {
            try receiver.writeInbound(frame)
            XCTAssertNil(try receiver.readInbound(as: Envelope.self), "chunks must not surface")
        }
        try receiver.writeInbound(frames.last!)
        let received = try XCTUnwrap(try receiver.readInbound(as: Envelope.self))
        guard case .fitRequest(let request) = received.body else { return XCTFail("got \(received.kind)") }
        XCTAssertEqual(request.round, 3)
        let got = try request.parameters.wireTensors()
        XCTAssertEqual(got.map(\.name), tensors.map(\.name))
        XCTAssertEqual(got.map(\.shape), tensors.map(\.shape))
        for (a, b) in zip(got, tensors) {
            XCTAssertEqual(a.dtype, b.dtype)
            XCTAssertTrue(a.bytes == b.bytes, "\(a.name) differs after reassembly")
        }
        XCTAssertEqual(try got[1].floats().map(\.bitPattern), try tensors[1].floats().map(\.bitPattern))
    }

    func testSmallPayloadStaysInline() throws {
        var chunker = PayloadChunker()
        let envelope = Envelope(.fitResult(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload(Samples.smallTensors()) }))
        XCTAssertEqual(try chunker.split(envelope), [envelope])
        XCTAssertEqual(chunker.nextTransferID, 1)
    }

    /// Splits a payload into chunk envelopes and the final reference envelope.
    private func chunked(_ tensors: [WireTensor], chunkSize: Int = 4096) throws -> [Envelope] {
        var chunker = PayloadChunker(chunkSize: chunkSize, inlineLimit: 0)
        let envelopes = try chunker.split(Envelope(.fitResult(.with { $0.round = 9; $0.parameters = Fedkit_V1_Payload(tensors) })))
        XCTAssertGreaterThan(envelopes.count, 3)
        return envelopes
    }

    private func feed(_ envelopes: [Envelope], to assembler: inout PayloadAssembler) throws -> [Envelope] {
        try envelopes.compactMap { try assembler.receive($0) }
    }

    func testHeartbeatMayInterleaveWithChunks() throws {
        var envelopes = try chunked(Samples.smallTensors() + [WireTensor(name: "big", shape: [5000], floats: Samples.floats(5000, seed: 3))])
        let heartbeat = Envelope(.heartbeat(.with { $0.unixMillis = 1 }))
        envelopes.insert(heartbeat, at: 2)
        var assembler = PayloadAssembler()
        let out = try feed(envelopes, to: &assembler)
        XCTAssertEqual(out.map(\.kind), ["heartbeat", "fit_result"])
        XCTAssertFalse(assembler.hasOpenTransfer)
    }

    func testChecksumMismatchAppliesNothing() throws {
        var envelopes = try chunked([WireTensor(name: "w", shape: [5000], floats: Samples.floats(5000, seed: 4))])
        // Flip one bit in the middle chunk.
        guard case .chunk(var chunk) = envelopes[1].body else { return XCTFail() }
        chunk.data[chunk.data.startIndex + 17] ^= 0x10
        envelopes[1].body = .chunk(chunk)
        var assembler = PayloadAssembler()
        var delivered: [Envelope] = []
        XCTAssertThrowsError(try envelopes.forEach { if let e = try assembler.receive($0) { delivered.append(e) } }) { error in
            guard case .checksumMismatch(transferID: 1, announced: let announced, computed: let computed)? = error as? WireError else {
                return XCTFail("expected checksumMismatch, got \(error)")
            }
            XCTAssertEqual(announced.count, 64)
            XCTAssertNotEqual(announced, computed)
            XCTAssertTrue("\(error)".contains("nothing was applied"))
        }
        XCTAssertTrue(delivered.isEmpty)
        XCTAssertFalse(assembler.hasOpenTransfer)
    }

    func testChecksumMismatchOverTheChannelSurfacesNoMessage() throws {
        var chunker = PayloadChunker(chunkSize: 4096, inlineLimit: 0)
        var envelopes = try chunker.split(Envelope(.fitResult(.with { $0.parameters = Fedkit_V1_Payload([WireTensor(name: "w", shape: [5000], floats: Samples.floats(5000, seed: 5))]) })))
        guard case .fitResult(var result) = envelopes.last!.body, case .chunked(var reference)? = result.parameters.content else { return XCTFail() }
        reference.sha256 = Data(SHA256.hash(data: Data("something else".utf8)))
        result.parameters.content = .chunked(reference)
        envelopes[envelopes.count - 1].body = .fitResult(result)

        let codec = FrameCodec()
        let receiver = try makeChannel()
        var error: Error?
        for envelope in envelopes {
            do { try receiver.writeInbound(try codec.encodeFrame(envelope)) } catch let e { error = e }
        }
        guard case .checksumMismatch? = error as? WireError else { return XCTFail("expected checksumMismatch, got \(String(describing: error))") }
        XCTAssertNil(try receiver.readInbound(as: Envelope.self))
    }

    func testMissingReorderedAndForeignChunksAreRefused() throws {
        let envelopes = try chunked([WireTensor(name: "w", shape: [5000], floats: Samples.floats(5000, seed: 6))])
        let chunkCount = UInt32(envelopes.count - 1)

        var assembler = PayloadAssembler()
        var missing = envelopes
        missing.remove(at: 2)
        XCTAssertThrowsError(try feed(missing, to: &assembler)) { error in
            XCTAssertEqual(error as? WireError, .chunkOutOfOrder(transferID: 1, expectedIndex: 2, receivedIndex: 3))
        }

        assembler = PayloadAssembler()
        XCTAssertThrowsError(try feed(Array(envelopes[1...]), to: &assembler)) { error in
            XCTAssertEqual(error as? WireError, .chunkOutOfOrder(transferID: 1, expectedIndex: 0, receivedIndex: 1))
        }

        assembler = PayloadAssembler()
        var lastMissing = envelopes
        lastMissing.remove(at: envelopes.count - 2)
        XCTAssertThrowsError(try feed(lastMissing, to: &assembler)) { error in
            XCTAssertEqual(error as? WireError, .missingChunks(transferID: 1, announcedChunks: chunkCount, receivedChunks: chunkCount - 1))
        }

        assembler = PayloadAssembler()
        var foreign = envelopes
        guard case .chunk(var chunk) = foreign[1].body else { return XCTFail() }
        chunk.transferID = 99
        foreign[1].body = .chunk(chunk)
        XCTAssertThrowsError(try feed(foreign, to: &assembler)) { error in
            XCTAssertEqual(error as? WireError, .unexpectedTransfer(transferID: 99, openTransferID: 1))
        }

        assembler = PayloadAssembler()
        XCTAssertThrowsError(try feed([envelopes.last!], to: &assembler)) { error in
            XCTAssertEqual(error as? WireError, .missingChunks(transferID: 1, announcedChunks: chunkCount, receivedChunks: 0))
        }
    }

    func testPayloadLimitStopsReassembly() throws {
        let envelopes = try chunked([WireTensor(name: "w", shape: [5000], floats: Samples.floats(5000, seed: 7))])
        var assembler = PayloadAssembler(maximumPayloadSize: 10_000)
        XCTAssertThrowsError(try feed(envelopes, to: &assembler)) { error in
            guard case .payloadTooLarge(transferID: 1, size: let size, limit: 10_000)? = error as? WireError else {
                return XCTFail("expected payloadTooLarge, got \(error)")
            }
            XCTAssertGreaterThan(size, 10_000)
        }
    }

    func testInvalidTensorInAnInlinePayloadIsRefused() throws {
        var bad = Fedkit_V1_Tensor()
        bad.name = "fc.weight"; bad.shape = [2, 2]; bad.dtype = .float32; bad.data = Data(count: 12)
        var payload = Fedkit_V1_Payload()
        payload.content = .inline(.with { $0.tensors = [bad] })
        var assembler = PayloadAssembler()
        XCTAssertThrowsError(try assembler.receive(Envelope(.fitResult(.with { $0.parameters = payload })))) { error in
            XCTAssertEqual(error as? WireError, .tensorSizeMismatch(tensor: "fc.weight", shape: [2, 2], expectedBytes: 16, actualBytes: 12))
        }
    }

    func testSegmentsConcatenateToTheProtobufSerialization() throws {
        var withUnknown = Fedkit_V1_Tensor()
        withUnknown.name = "u"; withUnknown.dtype = .uint8; withUnknown.shape = [2]; withUnknown.data = Data([1, 2])
        try withUnknown.merge(serializedBytes: [0x48, 0x07] as [UInt8])  // unknown field 9
        let sets = [
            Fedkit_V1_TensorSet(Samples.smallTensors()),
            Fedkit_V1_TensorSet([try WireTensor(name: "empty", shape: [0], dtype: .float32, bytes: Data())]),
            Fedkit_V1_TensorSet(bigTensors()),
            Fedkit_V1_TensorSet.with { $0.tensors = [withUnknown] },
            Fedkit_V1_TensorSet(),
        ]
        for set in sets {
            let joined = try PayloadChunker.serializedSegments(of: set).reduce(into: Data()) { $0.append($1) }
            let reference: Data = try set.serializedBytes()
            XCTAssertTrue(joined == reference, "segments differ for \(set.tensors.map(\.name))")
        }
    }

    func testChunksOfEverySizeReassembleExactly() throws {
        let tensors = Samples.smallTensors() + [WireTensor(name: "w", shape: [777], floats: Samples.floats(777, seed: 9))]
        for chunkSize in [1, 7, 100, 433, 4096] {
            var chunker = PayloadChunker(chunkSize: chunkSize, inlineLimit: 0)
            let envelopes = try chunker.split(Envelope(.evaluateRequest(.with { $0.round = 5; $0.parameters = Fedkit_V1_Payload(tensors) })))
            var assembler = PayloadAssembler()
            let out = try envelopes.compactMap { try assembler.receive($0) }
            XCTAssertEqual(out.count, 1)
            XCTAssertEqual(try out[0].payload?.wireTensors(), tensors, "chunk size \(chunkSize)")
        }
    }

    /// A run of chunks goes out only while the channel is writable: a slow reader holds back
    /// the rest (as views of the payload, not frames), and the write completes with the last
    /// chunk. What was written meanwhile follows the run, in order.
    func testChunksArePacedByWritability() throws {
        /// Models a peer's receive window of one frame: every write makes the channel unwritable.
        final class OneFrameWindow: ChannelOutboundHandler {
            typealias OutboundIn = ByteBuffer
            func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
                (context.channel as? EmbeddedChannel)?.isWritable = false
                context.write(data, promise: promise)
            }
        }
        let tensors = bigTensors()
        let sender = EmbeddedChannel()
        try sender.pipeline.syncOperations.addHandler(OneFrameWindow())
        try sender.pipeline.syncOperations.addFrameCodec()
        try sender.pipeline.syncOperations.addHandler(PayloadChunkingHandler(chunker: PayloadChunker(chunkSize: 1 << 20)))
        let fit = Envelope(.fitRequest(.with { $0.round = 3; $0.parameters = Fedkit_V1_Payload(tensors) }))
        let heartbeat = Envelope(.heartbeat(.with { $0.unixMillis = 1 }))
        let done = sender.eventLoop.makePromise(of: Void.self)
        let completed = Completion(done.futureResult)
        sender.write(fit, promise: done)
        sender.writeAndFlush(heartbeat, promise: nil)
        var frames = try drainOutbound(sender)
        XCTAssertEqual(frames.count, 1, "only the first chunk may go out before the peer reads")
        XCTAssertFalse(completed.done)

        // Each time the peer drains, exactly one more frame is written; flushing alone writes nothing.
        var windows = 0
        while windows < 100 {
            sender.flush()
            XCTAssertEqual(try drainOutbound(sender).count, 0, "a flush wrote into an unwritable channel")
            sender.isWritable = true
            sender.pipeline.fireChannelWritabilityChanged()
            let written = try drainOutbound(sender)
            if written.isEmpty { break }
            XCTAssertEqual(written.count, 1, "window \(windows + 1)")
            frames += written
            windows += 1
        }
        XCTAssertTrue(completed.done, "the write did not complete")
        XCTAssertNoThrow(try done.futureResult.wait())
        XCTAssertGreaterThan(windows, 10, "a 12 MB model in 1 MiB chunks needs more than 10 windows")

        let receiver = try makeChannel()
        for frame in frames { try receiver.writeInbound(frame) }
        var received: [Envelope] = []
        while let e = try receiver.readInbound(as: Envelope.self) { received.append(e) }
        XCTAssertEqual(received.map(\.kind), [fit.kind, heartbeat.kind], "order changed")
        XCTAssertEqual(try received[0].payload?.wireTensors(), tensors)
    }

    /// A socket can become writable again inside a flush, before the frame being written is
    /// complete (a handler below flushes part of it, as Transport's TLS slicer does): the next
    /// chunk must not be written from that callback, or two frames' bytes interleave.
    func testWritabilityReturningInsideAFlushDoesNotInterleaveFrames() throws {
        /// Flushes each frame in two halves; the first flush drains the "socket", which turns
        /// writable and says so at once, from inside the flush.
        final class HalvingReentrantSocket: ChannelOutboundHandler {
            typealias OutboundIn = ByteBuffer
            typealias OutboundOut = ByteBuffer
            func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
                var frame = Self.unwrapOutboundIn(data)
                let channel = context.channel as! EmbeddedChannel
                channel.isWritable = false
                if frame.readableBytes > 1, let first = frame.readSlice(length: frame.readableBytes / 2) {
                    context.write(Self.wrapOutboundOut(first), promise: nil)
                    context.flush()
                    channel.isWritable = true
                    context.pipeline.fireChannelWritabilityChanged()
                    channel.isWritable = false
                }
                context.write(Self.wrapOutboundOut(frame), promise: promise)
            }
        }
        let tensors = bigTensors()
        let sender = EmbeddedChannel()
        try sender.pipeline.syncOperations.addHandler(HalvingReentrantSocket())
        try sender.pipeline.syncOperations.addFrameCodec()
        try sender.pipeline.syncOperations.addHandler(PayloadChunkingHandler(chunker: PayloadChunker(chunkSize: 1 << 20)))
        let fit = Envelope(.fitRequest(.with { $0.round = 9; $0.parameters = Fedkit_V1_Payload(tensors) }))
        sender.writeAndFlush(fit, promise: nil)
        var bytes: [ByteBuffer] = []
        for _ in 0..<100 {
            bytes += try drainOutbound(sender)
            sender.isWritable = true
            sender.pipeline.fireChannelWritabilityChanged()
        }
        bytes += try drainOutbound(sender)

        let receiver = try makeChannel()
        for piece in bytes { try receiver.writeInbound(piece) }
        let received = try XCTUnwrap(try receiver.readInbound(as: Envelope.self), "the model did not arrive")
        XCTAssertEqual(try received.payload?.wireTensors(), tensors)
    }

    /// Envelopes still waiting for writability when the connection closes fail their writes.
    func testPendingChunksFailWhenTheChannelCloses() throws {
        let sender = try makeChannel(chunker: PayloadChunker(chunkSize: 1 << 20))
        sender.isWritable = false
        let fit = Envelope(.fitRequest(.with { $0.parameters = Fedkit_V1_Payload(bigTensors()) }))
        let done = sender.eventLoop.makePromise(of: Void.self)
        let completed = Completion(done.futureResult)
        sender.writeAndFlush(fit, promise: done)
        _ = try? sender.finish()
        XCTAssertTrue(completed.done, "a write that never went out must fail, not hang")
        if completed.done { XCTAssertThrowsError(try done.futureResult.wait(), "it completed without going out") }
    }
}

/// Below the chunking handler, takes a close request and holds it, as TLS does while it
/// waits for the peer's close_notify: the connection is closing but not yet inactive.
final class CloseHolder: ChannelOutboundHandler, @unchecked Sendable {
    typealias OutboundIn = NIOAny
    private(set) var held: EventLoopPromise<Void>?
    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        held = promise ?? context.eventLoop.makePromise()
    }
}

extension ChunkedTransferTests {
    /// A payload's chunks may be views of the sender's memory (the coordinator sends its model
    /// uncopied), and the sender takes an abandoned send as leave to write that memory again: so
    /// closing must drop the queued chunks at once, not when the connection is finally inactive.
    func testClosingDropsQueuedChunksBeforeTheConnectionIsInactive() throws {
        let sender = EmbeddedChannel()
        let holder = CloseHolder()
        try sender.pipeline.syncOperations.addHandler(holder)
        try sender.pipeline.syncOperations.addFrameCodec()
        try sender.pipeline.syncOperations.addHandler(PayloadChunkingHandler(chunker: PayloadChunker(chunkSize: 1 << 20)))
        sender.isWritable = false
        let fit = Envelope(.fitRequest(.with { $0.parameters = Fedkit_V1_Payload(bigTensors()) }))
        let done = sender.eventLoop.makePromise(of: Void.self)
        let completed = Completion(done.futureResult)
        sender.writeAndFlush(fit, promise: done)
        XCTAssertFalse(completed.done, "nothing can go out while the channel is not writable")
        sender.close(promise: nil)
        XCTAssertNotNil(holder.held, "the close request did not reach the holder")
        XCTAssertTrue(completed.done, "queued chunks outlived the close request")
        sender.isWritable = true
        sender.pipeline.fireChannelWritabilityChanged()
        XCTAssertEqual(try drainOutbound(sender).count, 0, "a chunk was written after the close request")
    }
}

/// Whether a future on an `EmbeddedEventLoop` has completed (its callbacks run synchronously).
final class Completion: @unchecked Sendable {
    private(set) var done = false
    init(_ future: EventLoopFuture<Void>) { future.whenComplete { _ in self.done = true } }
}
