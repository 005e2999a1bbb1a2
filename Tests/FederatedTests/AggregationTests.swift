import XCTest
import Foundation
import NN
import Tensor
import Wire
@testable import Federated

final class AggregationTests: XCTestCase {
    func wire(_ name: String, _ shape: [Int], _ values: [Float]) -> WireTensor {
        WireTensor(name: name, shape: shape, floats: values)
    }

    func testStreamingAverageEqualsTheWeightedMeanComputedByHand() throws {
        let avg = WeightedAverage(template: [("a", [2]), ("b", [1, 3])])
        try avg.add([wire("a", [2], [1, 2]), wire("b", [1, 3], [0, 0, 3])], weight: 1, client: "x", round: 1)
        try avg.add([wire("b", [1, 3], [6, 3, 0]), wire("a", [2], [4, -1])], weight: 2, client: "y", round: 1)
        let r = try XCTUnwrap(avg.result())
        XCTAssertEqual(r["a"]!.values, [3, 0])            // (1·1 + 2·4)/3, (1·2 − 2·1)/3
        XCTAssertEqual(r["b"]!.values, [4, 2, 1])
        XCTAssertEqual(weightedAverage([[1, 2], [4, -1]], weights: [1, 2]), [3, 0])
        XCTAssertEqual(avg.contributors, ["x", "y"])
    }

    /// The coordinator averages straight into its model: the same values as `result()`, only
    /// the averaged tensors written (FedBN's BatchNorm tensors stay as they were), and
    /// nothing written when a tensor does not fit.
    func testAveragingIntoTheModelWritesWhatResultReturnsAndNothingElse() throws {
        let model = try ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 16, 8], seed: 5).build()
        let shared = model.entries.filter { !$0.isBatchNorm }
        let avg = WeightedAverage(template: shared.map { ($0.name, $0.value.shape) })
        var rng = SeededGenerator(seed: 9)
        for (client, weight) in [("x", 3.0), ("y", 5.0), ("z", 1.0)] {
            let update = shared.map { e -> WireTensor in
                let t = Tensor(zeros: e.value.shape)
                t.fillNormal(std: 1, using: &rng)
                return WireTensor(name: e.name, shape: e.value.shape, floats: t.values)
            }
            try avg.add(update, weight: weight, client: client, round: 1)
        }
        let expected = try XCTUnwrap(avg.result())
        let batchNormBefore = model.snapshot { $0.isBatchNorm }
        XCTAssertTrue(try avg.writeAverage(into: model))
        for e in shared { XCTAssertEqual(e.value.values, expected[e.name]!.values, e.name) }
        for (name, t) in batchNormBefore.entries {
            XCTAssertEqual(model.entries.first { $0.name == name }!.value.values, t.values, "\(name) was overwritten")
        }

        // A template the model does not fit: refused before any tensor is written.
        let other = try ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 32, 8], seed: 5).build()
        let before = other.snapshot()
        XCTAssertThrowsError(try avg.writeAverage(into: other))
        for (name, t) in before.entries { XCTAssertEqual(other.entries.first { $0.name == name }!.value.values, t.values, name) }
        XCTAssertFalse(try WeightedAverage(template: []).writeAverage(into: model), "an empty average wrote something")
    }

    func testABadUpdateIsRefusedWholeAndLeavesTheSumUntouched() throws {
        let avg = WeightedAverage(template: [("a", [2]), ("b", [1])])
        try avg.add([wire("a", [2], [1, 1]), wire("b", [1], [1])], weight: 1, client: "good", round: 3)
        let cases: [([WireTensor], Double, String)] = [
            ([wire("a", [2], [9, 9])], 1, "missing b"),
            ([wire("a", [2], [9, 9]), wire("b", [1], [9]), wire("c", [1], [9])], 1, "unexpected tensor c"),
            ([wire("a", [1, 2], [9, 9]), wire("b", [1], [9])], 1, "shape [1, 2], expected [2]"),
            ([wire("a", [2], [.nan, 9]), wire("b", [1], [9])], 1, "NaN"),
            ([wire("a", [2], [.infinity, 9]), wire("b", [1], [9])], 1, "NaN or infinite"),
            ([wire("a", [2], [9, 9]), wire("a", [2], [9, 9])], 1, "sent twice"),
            ([wire("a", [2], [9, 9]), wire("b", [1], [9])], -5, "must be positive"),
        ]
        for (tensors, weight, expected) in cases {
            XCTAssertThrowsError(try avg.add(tensors, weight: weight, client: "evil", round: 3)) { error in
                XCTAssertTrue("\(error)".contains(expected) && "\(error)".contains("\"evil\"") && "\(error)".contains("round 3"), "\(error)")
            }
        }
        let r = try XCTUnwrap(avg.result())
        XCTAssertEqual(r["a"]!.values, [1, 1])
        XCTAssertEqual(avg.contributors, ["good"])
    }

    func testFedBNSharesEverythingButBatchNormAndFedWonNeedsTheNormFreeModel() throws {
        let model = try ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 8, 8]).build()
        let shared = model.entries.filter(FedBN().isShared).map(\.name)
        XCTAssertFalse(shared.contains { $0.hasPrefix("bn") })
        XCTAssertEqual(shared.count, model.entries.count - 5 * 4)
        XCTAssertEqual(model.entries.filter(FedAvg().isShared).count, model.entries.count)
        XCTAssertThrowsError(try FedWon().validate(model: model.spec))
        XCTAssertNoThrow(try FedWon().validate(model: ModelSpec.digitCNN(norm: .none)))
        XCTAssertThrowsError(try FedBN().validate(model: ModelSpec.digitCNN(norm: .none)))
        XCTAssertEqual(FedWon().configureFit(round: 1, base: TrainingSettings()).agcLambda, 0.32)
        XCTAssertEqual(FedProx().configureFit(round: 1, base: TrainingSettings()).proximalMu, 0.01)
        XCTAssertEqual(FedAvg().configureFit(round: 1, base: TrainingSettings()).agcLambda, 0)
    }

    func testClientSamplingIsReproducibleAndRespectsFractionAndMinimum() {
        let names = (0..<10).map { "c\($0)" }
        let a = sampleClients(names, fraction: 0.3, minimum: 1, round: 4, seed: 7)
        XCTAssertEqual(a, sampleClients(names.reversed(), fraction: 0.3, minimum: 1, round: 4, seed: 7))
        XCTAssertEqual(a.count, 3)
        XCTAssertNotEqual(a, sampleClients(names, fraction: 0.3, minimum: 1, round: 5, seed: 7))
        XCTAssertEqual(sampleClients(names, fraction: 0.1, minimum: 4, round: 1, seed: 1).count, 4)
        XCTAssertEqual(sampleClients(names, fraction: 1, minimum: 1, round: 1, seed: 1), names.sorted())
        XCTAssertEqual(sampleClients([], fraction: 1, minimum: 1, round: 1, seed: 1), [])
    }

    func testArchivesRoundTripAndRefuseTornFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-archive-\(getpid())").path
        try AtomicFile.makeDirectory(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/ckpt.fkt"
        var d = StateDictionary()
        d["w"] = try Tensor(shape: [2, 2], values: [1, 2, 3, 4])
        d["b"] = try Tensor(shape: [1], values: [-1])
        try TensorArchive.write(d, metadata: ["round": 7], to: path)
        let (back, meta) = try XCTUnwrap(TensorArchive.read(path, as: [String: Int].self))
        XCTAssertEqual(meta, ["round": 7])
        XCTAssertEqual(back.names, ["w", "b"])
        XCTAssertEqual(back["w"]!.values, [1, 2, 3, 4])
        XCTAssertNil(try TensorArchive.read(dir + "/absent.fkt", as: [String: Int].self))
        // Every truncation and a flipped byte are refused.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        for cut in [0, 8, 20, bytes.count / 2, bytes.count - 1] {
            XCTAssertThrowsError(try TensorArchive.decode(bytes.prefix(cut), as: [String: Int].self, path: "x"), "cut \(cut)")
        }
        var flipped = bytes; flipped[flipped.count - 40] ^= 1
        XCTAssertThrowsError(try TensorArchive.decode(flipped, as: [String: Int].self, path: "x")) { XCTAssertTrue("\($0)".contains("SHA-256")) }
        // An unwritable directory: a clear error, the old file intact.
        XCTAssertThrowsError(try TensorArchive.write(d, metadata: ["round": 8], to: "/proc/fedkit-none/ckpt.fkt")) { error in
            XCTAssertTrue("\(error)".contains("/proc/fedkit-none/ckpt.fkt"), "\(error)")
        }
        XCTAssertEqual(try TensorArchive.read(path, as: [String: Int].self)?.metadata, ["round": 7])
    }
}
