import Foundation
import NIOCore
import NIOEmbedded
import XCTest
@testable import Wire

final class PageCacheBufferTests: XCTestCase {
    let directory = NSTemporaryDirectory()

    /// Resident KiB of this process's mapping that holds `address`, from /proc/self/smaps.
    func residentKiB(_ address: UnsafeRawPointer) throws -> Int {
        let a = UInt(bitPattern: address)
        var inside = false
        // Read to the end: a proc file has no size to read up to.
        let smaps = try XCTUnwrap(FileHandle(forReadingAtPath: "/proc/self/smaps")).readToEnd() ?? Data()
        for line in String(decoding: smaps, as: UTF8.self).split(separator: "\n") {
            let head = line.prefix { $0 != " " }
            let bounds = head.split(separator: "-")
            if bounds.count == 2, let lo = UInt(bounds[0], radix: 16), let hi = UInt(bounds[1], radix: 16) {
                inside = lo <= a && a < hi
            } else if inside && line.hasPrefix("Rss:") {
                return try XCTUnwrap(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
            }
        }
        throw XCTSkip("no mapping holds \(address) in /proc/self/smaps")
    }

    func bytes(_ count: Int, seed: UInt8) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

    func address(_ data: Data) -> UnsafeRawPointer { data.withUnsafeBytes { $0.baseAddress! } }

    func testSegmentsReadBackAsWrittenEachOnItsOwnPages() throws {
        let contents = [0, 1, 4095, 4096, 4097, 100_000].enumerated().map { bytes($1, seed: UInt8($0)) }
        let buffer = try contents.withUnsafeBufferPointers { try PageCacheBuffer(directory: directory, contents: $0) }
        XCTAssertEqual(buffer.segments.map(\.count), contents.map(\.count))
        for (i, expected) in contents.enumerated() {
            XCTAssertEqual(buffer.segments[i].offset % PageCacheBuffer.pageSize, 0, "segment \(i) does not start a page")
            XCTAssertEqual([UInt8](buffer.data(i)), expected, "segment \(i) through the mapping")
            var copy = [UInt8](repeating: 0, count: expected.count)
            try copy.withUnsafeMutableBytes { if $0.count > 0 { try buffer.copy(i, into: $0.baseAddress!) } }
            XCTAssertEqual(copy, expected, "segment \(i) read from the file")
        }
    }

    /// Pages read through a view are dropped from this process's memory by `releaseAll`, and
    /// read back unchanged afterwards (the page cache kept them).
    func testViewsReadThroughTheMappingAreDroppedAndReadBackUnchanged() throws {
        let size = 8 << 20
        let original = bytes(size, seed: 9)
        let buffer = try [original].withUnsafeBufferPointers { try PageCacheBuffer(directory: directory, contents: $0) }
        let view = buffer.data(0)
        XCTAssertEqual([UInt8](view), original)  // reads every page in
        let before = try residentKiB(address(view))
        XCTAssertGreaterThanOrEqual(before, size / 1024 - 64, "reading the view did not map it")
        buffer.releaseAll()
        XCTAssertLessThanOrEqual(try residentKiB(address(view)), 8, "the pages stayed resident (\(before) KiB before)")
        XCTAssertEqual([UInt8](view), original, "the page cache lost what was dropped")
        buffer.releaseAll()
        XCTAssertLessThanOrEqual(try residentKiB(address(view)), 8)
    }

    /// Bytes of no buffer are not taken for a buffer's, also while buffers are registered:
    /// they are copied as they are.
    func testBytesOfNoBufferAreLeftAlone() throws {
        let data = Data(bytes(3 << 20, seed: 4))
        let buffer = try [bytes(5000, seed: 1)].withUnsafeBufferPointers { try PageCacheBuffer(directory: directory, contents: $0) }
        try withExtendedLifetime(buffer) {
            XCTAssertFalse(PageCacheBuffer.registry.isEmpty, "the buffer is not registered: the lookup is not exercised")
            XCTAssertFalse(PageCacheBuffer.isMapped(data))
            XCTAssertFalse(PageCacheBuffer.isMapped(Data()))
            XCTAssertNil(try PageCacheBuffer.fileCopy(of: data))
            var copy = [UInt8](repeating: 0, count: data.count)
            try copy.withUnsafeMutableBytes { try PageCacheBuffer.copyBytes(of: data, into: $0.baseAddress!) }
            XCTAssertEqual(copy, [UInt8](data))
            XCTAssertTrue(PageCacheBuffer.isMapped(buffer.data(0)))
            XCTAssertEqual([UInt8](try XCTUnwrap(PageCacheBuffer.fileCopy(of: buffer.data(0)))), bytes(5000, seed: 1))
        }
        XCTAssertEqual([UInt8](data), bytes(3 << 20, seed: 4))
    }

    /// Copies of a buffer's views, whole or in part at any offset, are read from the file: they
    /// hold the view's bytes, and the mapping is never read into this process's memory.
    func testCopiesOfViewsReadTheFileNotTheMapping() throws {
        let size = 4 << 20
        let original = bytes(size, seed: 12)
        let buffer = try [bytes(100, seed: 2), original].withUnsafeBufferPointers { try PageCacheBuffer(directory: directory, contents: $0) }
        let view = buffer.data(1)
        for (lo, hi) in [(0, size), (1, 4097), (size - 300_001, size), (123_457, 123_458)] {
            XCTAssertEqual([UInt8](try XCTUnwrap(PageCacheBuffer.fileCopy(of: view[lo..<hi]))), Array(original[lo..<hi]), "bytes \(lo)..<\(hi)")
        }
        XCTAssertEqual(try residentKiB(address(view)), 0, "copying read the mapping")
        XCTAssertEqual([UInt8](view), original)  // through the mapping: now it is read in
        XCTAssertGreaterThan(try residentKiB(address(view)), 0, "residency is not measured")
    }

    /// A chunked send of a payload read from the page cache: the receiver gets it bit for bit,
    /// and the sender never reads it through the mapping (checksum and chunks read the file).
    func testAChunkedSendReadsTheFileNotTheMapping() throws {
        let floats = (0..<(1 << 20)).map { Float($0) * 0.25 - 7 }
        let raw = floats.withUnsafeBytes { [UInt8]($0) }
        let buffer = try [raw].withUnsafeBufferPointers { try PageCacheBuffer(directory: directory, contents: $0) }
        let tensor = try WireTensor(name: "fc1.weight", shape: [1024, 1024], dtype: .float32, bytes: buffer.data(0))
        let sender = EmbeddedChannel()
        try sender.pipeline.syncOperations.addFrameCodec()
        try sender.pipeline.syncOperations.addHandler(PayloadChunkingHandler(chunker: PayloadChunker(chunkSize: 64 << 10)))
        try sender.writeOutbound(Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload([tensor]) })))
        var frames: [ByteBuffer] = []
        while let frame = try sender.readOutbound(as: ByteBuffer.self) { frames.append(frame) }
        XCTAssertGreaterThan(frames.count, 60)
        XCTAssertEqual(try residentKiB(address(tensor.bytes)), 0, "the send read the model through its mapping")

        let receiver = EmbeddedChannel()
        try receiver.pipeline.syncOperations.addFrameCodec()
        try receiver.pipeline.syncOperations.addHandler(PayloadChunkingHandler())
        for frame in frames { try receiver.writeInbound(frame) }
        let got = try XCTUnwrap(try receiver.readInbound(as: Envelope.self))
        guard case .fitRequest(let request) = got.body else { return XCTFail("got \(got.kind)") }
        XCTAssertEqual(try request.parameters.wireTensors()[0].floats().map(\.bitPattern), floats.map(\.bitPattern))
    }

    /// A payload whose file can no longer be read (a disk failing under the page cache) fails
    /// its send with an error that says so, and the connection closes: no signal, no peer
    /// left waiting for the rest of a transfer. Splitting it for its checksum fails likewise.
    func testAChunkThatCannotBeReadBackFailsTheSendAndClosesTheConnection() throws {
        let raw = (0..<(1 << 18)).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let buffer = try [raw].withUnsafeBufferPointers { try PageCacheBuffer(directory: directory, contents: $0) }
        let tensor = try WireTensor(name: "w", shape: [1 << 16], dtype: .float32, bytes: buffer.data(0))
        let request = Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload([tensor]) }))

        let sender = EmbeddedChannel()
        try sender.pipeline.syncOperations.addFrameCodec()
        try sender.pipeline.syncOperations.addHandler(PayloadChunkingHandler(chunker: PayloadChunker(chunkSize: 64 << 10, inlineLimit: 0)))
        try sender.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
        sender.isWritable = false  // the chunks wait, as behind a slow reader
        let sent = sender.writeAndFlush(request)  // the checksum reads the file while it can
        XCTAssertNil(try sender.readOutbound(as: ByteBuffer.self))
        buffer.file.close()
        sender.isWritable = true
        sender.pipeline.fireChannelWritabilityChanged()
        XCTAssertThrowsError(try sent.wait()) { XCTAssertTrue("\($0)".contains("page cache"), "\($0)") }
        XCTAssertFalse(sender.isActive, "the connection stayed open")
        var frames = 0
        while try sender.readOutbound(as: ByteBuffer.self) != nil { frames += 1 }
        XCTAssertLessThanOrEqual(frames, 1, "chunks went out after the file could not be read")

        XCTAssertThrowsError(try { var c = PayloadChunker(chunkSize: 64 << 10, inlineLimit: 0); _ = try c.split(request) }()) {
            XCTAssertTrue("\($0)".contains("page cache"), "\($0)")
        }
    }

    /// The checksum of a payload served from a buffer is computed once and kept: the same
    /// tensors sent again read only their chunks from the file, not the whole payload a second
    /// time for its checksum, while tensors with other headers or another checksum over the same
    /// bytes are hashed afresh; every one of them checks out at the receiver.
    func testAServedPayloadsChecksumIsComputedOnceAndKeptByItsBytes() throws {
        let floats = (0..<(1 << 18)).map { Float($0) * 0.5 }
        let raw = floats.withUnsafeBytes { [UInt8]($0) }
        let buffer = try [raw].withUnsafeBufferPointers { try PageCacheBuffer(directory: directory, contents: $0) }
        func request(_ name: String) throws -> Envelope {
            let tensor = try WireTensor(name: name, shape: [1 << 18], dtype: .float32, bytes: buffer.data(0))
            return Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload([tensor]) }))
        }
        func reference(_ envelopes: [Envelope]) throws -> Fedkit_V1_ChunkedPayload {
            for e in envelopes { if case .fitRequest(let r) = e.body, case .chunked(let c)? = r.parameters.content { return c } }
            throw XCTSkip("no chunked reference")
        }
        func received(_ envelopes: [Envelope]) throws -> [Float] {
            var assembler = PayloadAssembler()
            for e in envelopes { if let whole = try assembler.receive(e), case .fitRequest(let r) = whole.body { return try r.parameters.wireTensors()[0].floats() } }
            throw XCTSkip("not reassembled")
        }
        /// Bytes `body` read from the buffer's file.
        func read(_ body: () throws -> [Envelope]) rethrows -> (Int, [Envelope]) {
            let before = buffer.bytesRead
            let envelopes = try body()
            return (buffer.bytesRead - before, envelopes)
        }
        var crc = PayloadChunker(chunkSize: 64 << 10, inlineLimit: 0, checksum: .crc32c)
        var sha = PayloadChunker(chunkSize: 64 << 10, inlineLimit: 0, checksum: .sha256)
        let (firstRead, first) = try read { try crc.split(try request("w")) }
        XCTAssertGreaterThanOrEqual(firstRead, raw.count, "the first checksum did not read the payload")
        let (againRead, again) = try read { try crc.split(try request("w")) }
        XCTAssertLessThan(againRead, 64 << 10, "the same payload was hashed again")
        XCTAssertEqual(try reference(again).crc32C, try reference(first).crc32C)
        let (otherRead, other) = try read { try crc.split(try request("v")) }
        XCTAssertGreaterThanOrEqual(otherRead, raw.count, "a payload with another header took a kept checksum")
        XCTAssertNotEqual(try reference(other).crc32C, try reference(first).crc32C)
        let (shaRead, _) = try read { try sha.split(try request("w")) }
        XCTAssertGreaterThanOrEqual(shaRead, raw.count, "SHA-256 took the CRC's kept checksum")
        for envelopes in [first, again, other] {
            XCTAssertEqual(try received(envelopes).map(\.bitPattern), floats.map(\.bitPattern))
        }
    }

    func testADirectoryThatCannotHoldTheFileIsNamed() {
        XCTAssertThrowsError(try [bytes(10, seed: 0)].withUnsafeBufferPointers {
            try PageCacheBuffer(directory: "/nonexistent-fedkit-dir", contents: $0)
        }) { XCTAssertTrue("\($0)".contains("/nonexistent-fedkit-dir"), "\($0)") }
    }

    func testFileSystemsThatKeepFilesInMemoryAreRecognized() throws {
        XCTAssertFalse(UnnamedFile.isMemoryBacked("/nonexistent-fedkit-dir"))
        XCTAssertFalse(UnnamedFile.isMemoryBacked("/proc"), "procfs is not tmpfs")
        guard let mounts = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8),
              let tmpfs = mounts.split(separator: "\n").map({ $0.split(separator: " ") }).first(where: { $0.count > 2 && $0[2] == "tmpfs" }) else {
            throw XCTSkip("no tmpfs mounted")
        }
        XCTAssertTrue(UnnamedFile.isMemoryBacked(String(tmpfs[1])), "\(tmpfs[1]) is a tmpfs")
    }
}

extension Array where Element == [UInt8] {
    /// Calls `body` with a raw buffer over each element (alive for the call).
    func withUnsafeBufferPointers<R>(_ body: ([UnsafeRawBufferPointer]) throws -> R) rethrows -> R {
        func nest(_ i: Int, _ acc: [UnsafeRawBufferPointer]) throws -> R {
            guard i < count else { return try body(acc) }
            return try self[i].withUnsafeBytes { try nest(i + 1, acc + [$0]) }
        }
        return try nest(0, [])
    }
}
