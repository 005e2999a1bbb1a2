import CCRC32C
import Foundation
import Tensor
import XCTest
@testable import Wire

final class PayloadChecksumTests: XCTestCase {
    func testCRC32CKnownValues() {
        var crc = CRC32C()
        crc.update(Data("123456789".utf8))
        XCTAssertEqual(crc.value, 0xE306_9283)  // the standard check value of CRC-32C
        XCTAssertEqual(CRC32C().value, 0)
        var zeros = CRC32C()
        zeros.update(Data(count: 32))
        XCTAssertEqual(zeros.value, 0x8A91_36AA)  // RFC 3720 B.4: 32 bytes of zeros
    }

    func testHardwareAndPortablePathsAgreeOnEverySplit() {
        var rng = SplitMix64(seed: 99)
        let bytes = (0..<10_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        bytes.withUnsafeBytes { all in
            let reference = fedkit_crc32c_portable(0, all.baseAddress, all.count)
            XCTAssertEqual(fedkit_crc32c(0, all.baseAddress, all.count), reference)
            for _ in 0..<200 {
                let start = Int(rng.next() % 64), cut = start + Int(rng.next() % UInt64(all.count - start))
                var crc = CRC32C()
                crc.update(UnsafeRawBufferPointer(rebasing: all[start..<cut]))
                crc.update(UnsafeRawBufferPointer(rebasing: all[cut...]))
                XCTAssertEqual(crc.value, fedkit_crc32c_portable(0, all.baseAddress! + start, all.count - start))
            }
        }
    }

    /// Long inputs run the hardware path's three interleaved streams (12 KiB at a time) and
    /// join them: it agrees with the table path for lengths around and across those blocks,
    /// at every alignment, and continued from any earlier value.
    func testTheInterleavedHardwarePathAgreesWithTheTablePath() {
        var rng = SplitMix64(seed: 7)
        let bytes = (0..<200_000).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        bytes.withUnsafeBytes { all in
            let block = 3 * 4096
            var lengths = [block - 1, block, block + 1, 2 * block, 2 * block + 7, 16 * block + 4095, all.count - 64]
            for _ in 0..<40 { lengths.append(Int(rng.next() % UInt64(all.count - 64))) }
            for length in lengths {
                let start = Int(rng.next() % 64), seed = UInt32(truncatingIfNeeded: rng.next())
                let p = all.baseAddress! + start
                XCTAssertEqual(fedkit_crc32c(seed, p, length), fedkit_crc32c_portable(seed, p, length), "\(length) bytes at offset \(start)")
            }
            var zeros = [UInt8](repeating: 0, count: 5 * block)
            zeros.withUnsafeMutableBytes { z in
                XCTAssertEqual(fedkit_crc32c(0, z.baseAddress, z.count), fedkit_crc32c_portable(0, z.baseAddress, z.count))
                z[z.count - 1] = 1
                XCTAssertEqual(fedkit_crc32c(0, z.baseAddress, z.count), fedkit_crc32c_portable(0, z.baseAddress, z.count))
            }
        }
    }

    private func chunked(checksum: PayloadChecksum) throws -> [Envelope] {
        var chunker = PayloadChunker(chunkSize: 4096, inlineLimit: 0, checksum: checksum)
        return try chunker.split(Envelope(.fitResult(.with {
            $0.round = 2; $0.parameters = Fedkit_V1_Payload([WireTensor(name: "w", shape: [5000], floats: Samples.floats(5000, seed: 8))])
        })))
    }

    private func reference(_ envelope: Envelope) -> Fedkit_V1_ChunkedPayload? {
        if case .chunked(let reference)? = envelope.payload?.content { return reference }
        return nil
    }

    func testCRC32CPayloadRoundTripsAndCarriesNoSHA256() throws {
        let envelopes = try chunked(checksum: .crc32c)
        let ref = try XCTUnwrap(reference(envelopes.last!))
        XCTAssertEqual(ref.crc32C.count, 4)
        XCTAssertTrue(ref.sha256.isEmpty)
        var assembler = PayloadAssembler()
        let out = try envelopes.compactMap { try assembler.receive($0) }
        XCTAssertEqual(try out.first?.payload?.wireTensors().first?.floats().map(\.bitPattern),
                       Samples.floats(5000, seed: 8).map(\.bitPattern))
    }

    func testCRC32CMismatchAppliesNothing() throws {
        var envelopes = try chunked(checksum: .crc32c)
        guard case .chunk(var chunk) = envelopes[0].body else { return XCTFail() }
        chunk.data[chunk.data.startIndex + 40] ^= 0x01
        envelopes[0].body = .chunk(chunk)
        var assembler = PayloadAssembler()
        var delivered: [Envelope] = []
        XCTAssertThrowsError(try envelopes.forEach { if let e = try assembler.receive($0) { delivered.append(e) } }) { error in
            guard case .crc32cMismatch(transferID: 1, announced: _, computed: _)? = error as? WireError else {
                return XCTFail("expected crc32cMismatch, got \(error)")
            }
        }
        XCTAssertTrue(delivered.isEmpty)
    }

    func testPayloadWithoutChecksumIsRefused() throws {
        var envelopes = try chunked(checksum: .sha256)
        var last = envelopes.removeLast()
        var ref = try XCTUnwrap(reference(last))
        ref.sha256 = Data()
        last.payload = Fedkit_V1_Payload.with { $0.content = .chunked(ref) }
        envelopes.append(last)
        var assembler = PayloadAssembler()
        XCTAssertThrowsError(try envelopes.forEach { _ = try assembler.receive($0) }) { error in
            XCTAssertEqual(error as? WireError, .missingChecksum(transferID: 1))
        }
    }
}
