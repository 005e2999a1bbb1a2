import Foundation
import SwiftProtobuf
import XCTest
@testable import Wire

/// A chunked payload read as it arrives: the same tensors as reassembling it whole, and every
/// fault found — most of them only at the last chunk, as the receiver must expect.
final class PayloadStreamTests: XCTestCase {
    func set() -> Fedkit_V1_TensorSet {
        Fedkit_V1_TensorSet(Samples.smallTensors() + [
            try! WireTensor(name: "empty", shape: [0, 3], dtype: .float32, bytes: Data()),
            WireTensor(name: "big", shape: [3000], floats: (0..<3000).map { Float($0) * 0.25 }),
            WireTensor(name: "ünïcode", shape: [2], floats: [1, 2]),
        ])
    }

    func split(_ set: Fedkit_V1_TensorSet, chunkSize: Int, checksum: PayloadChecksum = .sha256) throws -> (Fedkit_V1_ChunkedPayload, [Fedkit_V1_PayloadChunk]) {
        var chunker = PayloadChunker(chunkSize: chunkSize, inlineLimit: 0, checksum: checksum)
        chunker.streamed = true
        var request = Fedkit_V1_FitResult()
        request.parameters.content = .inline(set)
        let envelopes = try chunker.split(Envelope(.fitResult(request)))
        guard case .fitResult(let carrier) = envelopes[0].body, case .chunked(let reference)? = carrier.parameters.content else {
            XCTFail("the carrier does not come first")
            throw WireError.invalidTensorSet(reason: "test")
        }
        return (reference, envelopes.dropFirst().map { if case .chunk(let c) = $0.body { c } else { fatalError() } })
    }

    /// Rebuilds the tensors from the events.
    func read(_ reference: Fedkit_V1_ChunkedPayload, _ chunks: [Fedkit_V1_PayloadChunk]) throws -> Fedkit_V1_TensorSet {
        var stream = try PayloadStream(reference)
        var out = Fedkit_V1_TensorSet()
        var complete = false
        for (i, chunk) in chunks.enumerated() {
            XCTAssertFalse(complete)
            complete = try stream.take(chunk) { event in
                switch event {
                case .begin(let name, let shape, let dtype, let byteCount):
                    out.tensors.append(.with { $0.name = name; $0.shape = shape; $0.dtype = dtype; $0.data.reserveCapacity(byteCount) })
                case .data(let bytes):
                    out.tensors[out.tensors.count - 1].data.append(contentsOf: bytes)
                case .end:
                    break
                }
            }
            XCTAssertEqual(complete, i == chunks.count - 1)
        }
        XCTAssertTrue(stream.isComplete)
        return out
    }

    func testChunksOfAnySizeGiveTheTensorsSent() throws {
        let original = set()
        for size in [1, 2, 3, 5, 16, 17, 100, 1000, 1 << 20] {
            for checksum in PayloadChecksum.allCases {
                let (reference, chunks) = try split(original, chunkSize: size, checksum: checksum)
                XCTAssertEqual(try read(reference, chunks), original, "chunks of \(size), \(checksum)")
            }
        }
    }

    func testFaultsAreFoundAndNamed() throws {
        let (reference, chunks) = try split(set(), chunkSize: 500)
        func failure(_ reference: Fedkit_V1_ChunkedPayload, _ chunks: [Fedkit_V1_PayloadChunk]) -> String {
            do {
                var stream = try PayloadStream(reference)
                for chunk in chunks { _ = try stream.take(chunk) { _ in } }
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        var corrupt = chunks
        corrupt[chunks.count / 2].data = Data(corrupt[chunks.count / 2].data)  // a chunk's data may be a slice
        corrupt[chunks.count / 2].data[7] ^= 1
        XCTAssertTrue(failure(reference, corrupt).contains("failed its SHA-256 check"), failure(reference, corrupt))
        var crc = try split(set(), chunkSize: 500, checksum: .crc32c)
        crc.1[1].data = Data(crc.1[1].data)
        crc.1[1].data[0] ^= 0x80
        XCTAssertTrue(failure(crc.0, crc.1).contains("CRC-32C") || failure(crc.0, crc.1).contains("not a valid"), failure(crc.0, crc.1))
        var swapped = chunks
        swapped.swapAt(1, 2)
        XCTAssertTrue(failure(reference, swapped).contains("received chunk 2, expected chunk 1"), failure(reference, swapped))
        XCTAssertTrue(failure(reference, chunks + [chunks[0]]).contains("announces \(chunks.count) chunks"), failure(reference, chunks + [chunks[0]]))
        var bigger = chunks
        bigger[bigger.count - 1].data.append(0)
        XCTAssertTrue(failure(reference, bigger).contains("announces \(reference.totalBytes) bytes"), failure(reference, bigger))
        var other = chunks
        other[3].transferID += 1
        XCTAssertTrue(failure(reference, other).contains("while transfer"), failure(reference, other))
        var none = reference
        none.sha256 = Data()
        XCTAssertThrowsError(try PayloadStream(none)) { XCTAssertTrue("\($0)".contains("no checksum"), "\($0)") }
        var huge = reference
        huge.totalBytes = 1 << 40
        XCTAssertThrowsError(try PayloadStream(huge))
    }

    /// A tensor whose data is followed by another field cannot be streamed (its header would
    /// change after its data): refused, naming the tensor.
    func testAFieldAfterATensorsDataIsRefused() throws {
        let tensor = Fedkit_V1_Tensor.with { $0.name = "late"; $0.dtype = .float32; $0.data = Data(count: 8) }
        var bytes: [UInt8] = try tensor.serializedBytes()
        bytes += [0x10, 0x02]  // shape 2, after the data
        let record: [UInt8] = [0x0A, UInt8(bytes.count)] + bytes
        var parser = TensorStreamParser()
        XCTAssertThrowsError(try record.withUnsafeBytes { try parser.feed($0) { _ in } }) {
            XCTAssertTrue("\($0)".contains("fields after its data"), "\($0)")
        }
    }

    /// Random bytes never crash the reader nor make it hold more than its header bound.
    func testRandomBytesAreRefusedOrParsed() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<300, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var parser = TensorStreamParser()
            do {
                try bytes.withUnsafeBytes { raw in
                    var start = 0
                    while start < raw.count {
                        let end = min(raw.count, start + Int.random(in: 1...40, using: &rng))
                        try parser.feed(UnsafeRawBufferPointer(rebasing: raw[start..<end])) { _ in }
                        start = end
                    }
                }
            } catch is WireError {
            }
        }
    }
}
