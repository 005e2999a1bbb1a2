import Foundation
import NN
import SwiftProtobuf
import Wire
import XCTest
@testable import Federated

/// A seeded random-mutation loop over the coordinator's handling of a client's update:
/// protobuf decoding, tensor conversion, the example-count bound and whole-update
/// validation, exactly as `Coordinator.receive` chains them.
///
/// Invariants: nothing crashes; a refused update leaves the running sum untouched; an
/// accepted one has every expected tensor once, the right shapes and only finite values.
final class UpdateFuzzTests: XCTestCase {
    func testMutatedFitResultsAreRefusedWholeOrAreValid() throws {
        let spec = ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 16, 8], seed: 5)
        let model = try spec.build()
        let shared = model.entries.filter { !$0.isBatchNorm }
        let template = shared.map { ($0.name, $0.value.shape) }
        let shapes = Dictionary(uniqueKeysWithValues: template)
        var seed = Fedkit_V1_FitResult()
        seed.round = 3
        seed.numExamples = 40
        seed.parameters = Fedkit_V1_Payload(model.wireTensors { !$0.isBatchNorm })
        let seedBytes: [UInt8] = try Envelope(.fitResult(seed)).serializedBytes()

        var generator = SplitMix(seed: 2024)
        let iterations = 10_000
        var decoded = 0, accepted = 0, refused = 0
        for _ in 0..<iterations {
            let bytes = Self.mutate(seedBytes, &generator)
            guard let envelope = try? Envelope(serializedBytes: bytes), case .fitResult(let r) = envelope.body else { continue }
            decoded += 1
            let aggregator = WeightedAverage(template: template)
            // The coordinator's bound, with a declared count of 40 and the default cap.
            let claimed = Int(clamping: r.numExamples)
            guard claimed >= 1, claimed <= 40 else { refused += 1; continue }
            let tensors: [WireTensor]
            do { tensors = try r.parameters.wireTensors() } catch { refused += 1; continue }
            do {
                try aggregator.add(tensors, weight: Double(claimed), client: "fuzz", round: r.round)
            } catch {
                refused += 1
                XCTAssertEqual(aggregator.totalWeight, 0, "a refused update changed the sum")
                XCTAssertEqual(aggregator.contributors, [])
                continue
            }
            accepted += 1
            XCTAssertEqual(Set(tensors.map(\.name)), Set(shapes.keys))
            XCTAssertEqual(tensors.count, shapes.count)
            for t in tensors {
                XCTAssertEqual(t.shape, shapes[t.name])
                XCTAssertTrue(try t.floats().allSatisfy(\.isFinite), "accepted non-finite values in \(t.name)")
            }
        }
        XCTAssertGreaterThan(decoded, iterations / 10, "the mutations rarely decode; the loop tests little")
        XCTAssertGreaterThan(refused, 0)
        print("update fuzz: \(iterations) mutated FitResults, \(decoded) decoded, \(refused) refused, \(accepted) accepted (all valid)")
    }

    /// One to four random edits: bit flips, byte overwrites with boundary values,
    /// insertions, deletions, truncation, or a copied span.
    static func mutate(_ input: [UInt8], _ g: inout SplitMix) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + Int(g.next() % 4)) where !b.isEmpty {
            let i = Int(g.next() % UInt64(b.count))
            switch g.next() % 7 {
            case 0: b[i] ^= UInt8(1 << (g.next() % 8))
            case 1: b[i] = [0x00, 0xFF, 0x7F, 0x80, 0xC0, 0x01][Int(g.next() % 6)]
            case 2: b.insert(UInt8(truncatingIfNeeded: g.next()), at: i)
            case 3: b.remove(at: i)
            case 4: b = Array(b.prefix(i))
            case 5:
                // NaN or Inf into the middle of tensor data (Float32 little-endian).
                let pattern: [UInt8] = g.next() % 2 == 0 ? [0x00, 0x00, 0xC0, 0x7F] : [0x00, 0x00, 0x80, 0xFF]
                for k in 0..<4 where i + k < b.count { b[i + k] = pattern[k] }
            default:
                let j = Int(g.next() % UInt64(b.count)), n = min(16, b.count - max(i, j))
                if n > 0 { b.replaceSubrange(i..<(i + n), with: b[j..<(j + n)]) }
            }
        }
        return b
    }
}
