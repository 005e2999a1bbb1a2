import Foundation
import Tensor
import NIOCore
import SwiftProtobuf
import XCTest
@testable import Wire

final class TensorSetParserTests: XCTestCase {
    private func serialized(_ set: Fedkit_V1_TensorSet) throws -> ByteBuffer {
        ByteBuffer(bytes: try set.serializedBytes() as [UInt8])
    }

    func testParsesWhatSwiftProtobufWrites() throws {
        let set = Fedkit_V1_TensorSet(Samples.smallTensors() + [
            try WireTensor(name: "ünïcode.weight", shape: [0, 3], dtype: .float32, bytes: Data()),
            try WireTensor(name: "steps", shape: [1], dtype: .int64, bytes: Data([1, 2, 3, 4, 5, 6, 7, 8])),
        ])
        XCTAssertEqual(try TensorSetParser.parse(try serialized(set)), set)
    }

    /// Every tensor's data is a view of the reassembled buffer, including those lying past
    /// 16 MiB (where a `ByteBuffer` slice would be a copy), and the owner lives as long as
    /// any view does. (Foundation copies a `Data` of a few bytes inline; tensors are larger.)
    func testTensorDataAreViewsOfTheBufferAndKeepTheOwnerAlive() throws {
        final class Owner { var released: () -> Void = {}; deinit { released() } }
        let big = [Float](repeating: 0.5, count: 5 << 20)  // 20 MiB
        let set = Fedkit_V1_TensorSet([WireTensor(name: "big", shape: [big.count], floats: big),
                                       WireTensor(name: "after", shape: [100], floats: (0..<100).map(Float.init))])
        let buffer = try serialized(set)
        var released = false
        var parsed: Fedkit_V1_TensorSet? = try {
            let owner = Owner()
            owner.released = { released = true }
            return try TensorSetParser.parse(buffer, owner: owner)
        }()
        XCTAssertEqual(parsed, set)
        buffer.withUnsafeReadableBytes { raw in
            let range = UInt(bitPattern: raw.baseAddress!)..<UInt(bitPattern: raw.baseAddress! + raw.count)
            for tensor in parsed!.tensors {
                tensor.data.withUnsafeBytes { data in
                    XCTAssertTrue(range.contains(UInt(bitPattern: data.baseAddress!)), "\(tensor.name) was copied")
                }
            }
        }
        var after: Data? = parsed!.tensors[1].data
        parsed = nil
        XCTAssertFalse(released, "the owner went while a view was alive")
        XCTAssertEqual(after?.count, 400)
        after = nil
        XCTAssertTrue(released, "the owner outlived every view")
    }

    func testUnpackedShapeAndUnknownFieldsAreHandled() throws {
        // Tensor { name: "w", shape: 2 (unpacked), shape: 1 (unpacked), unknown field 9 (varint), dtype: 1, data: 8 bytes }
        let tensor: [UInt8] = [0x0A, 0x01, 0x77, 0x10, 0x02, 0x10, 0x01, 0x48, 0x05, 0x18, 0x01, 0x22, 0x08] + [UInt8](repeating: 0, count: 8)
        let set: [UInt8] = [0x0A, UInt8(tensor.count)] + tensor + [0x15, 1, 2, 3, 4]  // plus an unknown fixed32 field
        let parsed = try TensorSetParser.parse(ByteBuffer(bytes: set))
        XCTAssertEqual(parsed.tensors.count, 1)
        XCTAssertEqual(parsed.tensors[0].name, "w")
        XCTAssertEqual(parsed.tensors[0].shape, [2, 1])
        XCTAssertEqual(try parsed.wireTensors()[0].floats(), [0, 0])
    }

    func testMutatedInputsNeverCrashAndAgreeWithSwiftProtobufWhenBothAccept() throws {
        let seed = [UInt8](try serialized(Fedkit_V1_TensorSet(Samples.smallTensors())).readableBytesView)
        var rng = SplitMix64(seed: 7)
        var agreements = 0
        for _ in 0..<3000 {
            var bytes = seed
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
            }
            if rng.next() % 4 == 0 { bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count)))) }
            let ours = try? TensorSetParser.parse(ByteBuffer(bytes: bytes))
            let reference = try? Fedkit_V1_TensorSet(serializedBytes: bytes, options: BinaryDecodingOptions())
            if let ours, let reference {
                XCTAssertEqual(ours.tensors.map(\.name), reference.tensors.map(\.name))
                XCTAssertEqual(ours.tensors.map(\.shape), reference.tensors.map(\.shape))
                XCTAssertEqual(ours.tensors.map(\.data), reference.tensors.map(\.data))
                agreements += 1
            }
        }
        XCTAssertGreaterThan(agreements, 100)
    }

    func testFirstChunkAnnouncingTooMuchIsRefusedAtOnce() throws {
        var assembler = PayloadAssembler(maximumPayloadSize: 1000)
        let chunk = Envelope(.chunk(.with { $0.transferID = 3; $0.index = 0; $0.totalBytes = 5000; $0.data = Data(count: 10) }))
        XCTAssertThrowsError(try assembler.receive(chunk)) { error in
            XCTAssertEqual(error as? WireError, .payloadTooLarge(transferID: 3, size: 5000, limit: 1000))
        }
    }
}
