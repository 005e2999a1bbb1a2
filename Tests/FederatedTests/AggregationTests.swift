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

    /// Writing the average while giving the sums' memory back (as the coordinator does): the
    /// same model bit for bit, an emptied average, and a next round in that memory equal to
    /// one in a fresh accumulator.
    func testWritingTheAverageCanGiveTheSumsBack() throws {
        let spec = ModelSpec.digitCNN(norm: .none, widths: [4, 4, 8, 2048, 8], seed: 5)
        func bits(_ m: Model) -> [[UInt32]] { m.entries.map { $0.value.values.map(\.bitPattern) } }
        func bits(_ d: StateDictionary?) -> [[UInt32]] { d?.entries.map { $0.tensor.values.map(\.bitPattern) } ?? [] }
        for precision in AggregationPrecision.allCases {
            let kept = try spec.build(), given = try spec.build()
            let template = kept.entries.map { ($0.name, $0.value.shape) }
            XCTAssertGreaterThan(template.map { $0.1.reduce(1, *) }.max()!, 2 * WeightedAverage.releaseBlock, "no tensor spans several blocks")
            let updates = randomUpdates(template, count: 4, seed: 77)
            let avg = WeightedAverage(template: template, precision: precision), reference = WeightedAverage(template: template, precision: precision)
            for (k, u) in updates.prefix(2).enumerated() {
                try avg.add(u, weight: Double(k + 2), client: "c\(k)", round: 1)
                try reference.add(u, weight: Double(k + 2), client: "c\(k)", round: 1)
            }
            XCTAssertTrue(try reference.writeAverage(into: kept))
            let largest = avg.counts.indices.max { avg.counts[$0] < avg.counts[$1] }!
            let bytes = avg.counts[largest] * (precision == .float64 ? 8 : 4)
            XCTAssertGreaterThan(residentFraction(avg.sums[largest], bytes), 0.99, "\(precision): the sums were not resident to begin with")
            XCTAssertTrue(try avg.writeAverage(into: given, releasingSums: true))
            XCTAssertLessThan(residentFraction(avg.sums[largest], bytes), 0.01, "\(precision): the sums' memory was not given back")
            XCTAssertEqual(bits(given), bits(kept), "\(precision): another average when the sums are given back")
            XCTAssertNil(avg.result(), "\(precision): the average was not emptied")
            let fresh = WeightedAverage(template: template, precision: precision)
            for (k, u) in updates.suffix(2).enumerated() {
                try avg.add(u, weight: Double(k + 1), client: "c\(k)", round: 2)
                try fresh.add(u, weight: Double(k + 1), client: "c\(k)", round: 2)
            }
            XCTAssertEqual(bits(avg.result()), bits(fresh.result()), "\(precision): the given-back sums held something")
        }
    }

    func randomUpdates(_ template: [(name: String, shape: [Int])], count: Int, seed: UInt64) -> [[WireTensor]] {
        FederatedTests.randomUpdates(template, count: count, seed: seed)
    }

    func values(_ t: WireTensor) -> [Float] { try! t.floats() }

    let blockTemplate: [(name: String, shape: [Int])] = [("w", [3, WeightedAverage.block + 5]), ("b", [7])]

    /// Values are checked block by block as they are added: a NaN in the third block of the
    /// second tensor refuses the update and takes back the tensor and the blocks already
    /// added. With Float64 sums the average afterwards is bit for bit what it was.
    func testANaNDeepInAnUpdateTakesBackWhatWasAlreadyAdded() throws {
        let updates = randomUpdates(blockTemplate, count: 3, seed: 21)
        for precision in AggregationPrecision.allCases {
            let avg = WeightedAverage(template: blockTemplate, precision: precision)
            try avg.add(updates[0], weight: 3, client: "a", round: 2)
            try avg.add(updates[1], weight: 5, client: "b", round: 2)
            let before = try XCTUnwrap(avg.result())
            // "b" first, then "w" with a NaN at 2·block + 7: all of "b" and two blocks of "w" were added.
            var poisoned = updates[2].reversed().map { $0 }
            var w = values(poisoned[1])
            w[2 * WeightedAverage.block + 7] = .nan
            poisoned[1] = WireTensor(name: "w", shape: blockTemplate[0].shape, floats: w)
            XCTAssertThrowsError(try avg.add(poisoned, weight: 1000, client: "evil", round: 2)) { error in
                XCTAssertTrue("\(error)".contains("tensor w contains NaN") && "\(error)".contains("\"evil\""), "\(error)")
            }
            XCTAssertEqual(avg.contributors, ["a", "b"])
            XCTAssertEqual(avg.totalWeight, 8)
            let after = try XCTUnwrap(avg.result())
            for name in ["w", "b"] {
                let (x, y) = (before[name]!.values, after[name]!.values)
                let tolerance: Float = precision == .float64 ? 0 : 1e-4
                let moved = zip(x, y).filter { abs($0 - $1) > tolerance * max(1, abs($0)) }.count
                XCTAssertEqual(moved, 0, "\(precision): \(moved) of \(x.count) values of \(name) moved")
            }
        }
        // A NaN in the first block of the first update: nothing was added, nothing to take back.
        let avg = WeightedAverage(template: blockTemplate)
        var bad = updates[0]
        bad[0] = WireTensor(name: "w", shape: blockTemplate[0].shape, floats: [Float.infinity] + Array(values(bad[0]).dropFirst()))
        XCTAssertThrowsError(try avg.add(bad, weight: 1, client: "evil", round: 1))
        XCTAssertNil(avg.result())
        try avg.add(updates[1], weight: 2, client: "ok", round: 1)
        XCTAssertTrue(avg.result()!["w"]!.values == values(updates[1][0]), "a refused first update left something behind")
    }

    /// Float64 sums: the exact weighted mean rounded once, whatever the order of arrival.
    /// Float32 sums: within a few Float32 roundings of it.
    func testBothPrecisionsAgreeWithTheWeightedMeanAndFloat64IgnoresArrivalOrder() throws {
        let updates = randomUpdates(blockTemplate, count: 5, seed: 4)
        let weights: [Double] = [120, 7, 3001, 55, 640]
        let expected = blockTemplate.indices.map { i in
            weightedAverage(updates.map { values($0[i]) }, weights: weights)
        }
        var previous: [[Float]]?
        for order in [[0, 1, 2, 3, 4], [4, 2, 0, 3, 1], [3, 4, 1, 0, 2]] {
            let avg = WeightedAverage(template: blockTemplate, precision: .float64)
            for k in order { try avg.add(updates[k], weight: weights[k], client: "c\(k)", round: 1) }
            let r = try XCTUnwrap(avg.result())
            let values = blockTemplate.map { r[$0.name]!.values }
            XCTAssertTrue(values == expected, "order \(order): not the exact weighted mean")
            if let previous { XCTAssertTrue(values == previous, "order \(order) changed the average") }
            previous = values
        }
        let avg = WeightedAverage(template: blockTemplate, precision: .float32)
        for k in [4, 2, 0, 3, 1] { try avg.add(updates[k], weight: weights[k], client: "c\(k)", round: 1) }
        let r = try XCTUnwrap(avg.result())
        for (i, entry) in blockTemplate.enumerated() {
            let off = zip(r[entry.name]!.values, expected[i]).filter { abs($0 - $1) > 1e-5 * max(1, abs($1)) }.count
            XCTAssertEqual(off, 0, "float32 sums: \(off) values of \(entry.name) off")
        }
        XCTAssertEqual(avg.accumulatorBytes * 2, WeightedAverage(template: blockTemplate).accumulatorBytes)
    }

    /// `reset()` starts a new round in the same memory: the next average knows nothing of
    /// the last, including when the next round's first update is refused.
    func testResetStartsAFreshAverageInTheSameMemory() throws {
        let updates = randomUpdates(blockTemplate, count: 3, seed: 8)
        for precision in AggregationPrecision.allCases {
            let avg = WeightedAverage(template: blockTemplate, precision: precision)
            try avg.add(updates[0], weight: 9, client: "a", round: 1)
            avg.reset()
            XCTAssertNil(avg.result())
            XCTAssertEqual(avg.contributors, [])
            try avg.add(updates[1], weight: 2, client: "b", round: 2)
            try avg.add(updates[2], weight: 6, client: "c", round: 2)
            let fresh = WeightedAverage(template: blockTemplate, precision: precision)
            try fresh.add(updates[1], weight: 2, client: "b", round: 2)
            try fresh.add(updates[2], weight: 6, client: "c", round: 2)
            XCTAssertTrue(avg.result()!["w"]!.values == fresh.result()!["w"]!.values, "\(precision): reset left something behind")
            XCTAssertEqual(avg.contributors, ["b", "c"])
        }
    }

    // MARK: Norm clipping

    /// A small model as the clipping reference, and updates around it: `spread[k]` is the
    /// standard deviation of update k's difference from the model.
    func clippingSetup(spread: [Float], seed: UInt64) throws -> (model: Model, template: [(name: String, shape: [Int])], updates: [[WireTensor]]) {
        let model = try ModelSpec.digitCNN(norm: .none, widths: [4, 4, 8, 16, 8], seed: 5).build()
        let template = model.entries.map { ($0.name, $0.value.shape) }
        var rng = SeededGenerator(seed: seed)
        let updates = spread.map { std in
            model.entries.map { e -> WireTensor in
                let d = Tensor(zeros: e.value.shape)
                d.fillNormal(std: std, using: &rng)
                return WireTensor(name: e.name, shape: e.value.shape, floats: zip(e.value.values, d.values).map { $0 + $1 })
            }
        }
        return (model, template, updates)
    }

    func distance(_ update: [WireTensor], from model: Model) -> Double {
        let byName = Dictionary(uniqueKeysWithValues: model.entries.map { ($0.name, $0.value.values) })
        return update.reduce(0.0) { sum, t in
            zip(values(t), byName[t.name]!).reduce(sum) { let d = Double($1.0) - Double($1.1); return $0 + d * d }
        }.squareRoot()
    }

    /// A bound no update reaches changes nothing: the same average bit for bit, in both precisions.
    func testClippingThatNoUpdateReachesChangesNothing() throws {
        let (model, template, updates) = try clippingSetup(spread: [0.1, 0.5, 1], seed: 3)
        for precision in AggregationPrecision.allCases {
            let plain = WeightedAverage(template: template, precision: precision)
            let clipped = WeightedAverage(template: template, precision: precision, clipping: UpdateClipping(bound: 1e30, reference: model))
            for (k, u) in updates.enumerated() {
                try plain.add(u, weight: Double(10 + k), client: "c\(k)", round: 1)
                try clipped.add(u, weight: Double(10 + k), client: "c\(k)", round: 1)
                XCTAssertEqual(try XCTUnwrap(clipped.lastDistance), distance(u, from: model), accuracy: distance(u, from: model) * 1e-5)
            }
            let a = try XCTUnwrap(plain.result()), b = try XCTUnwrap(clipped.result())
            for (name, _) in template { XCTAssertEqual(a[name]!.values, b[name]!.values, "\(precision) \(name)") }
        }
    }

    /// An update farther than the bound counts as the reference plus its difference scaled to
    /// the bound; nearer ones count as they are. Averaging into the reference model itself
    /// (as the coordinator does) gives the same values.
    func testAFarUpdateCountsAsTheReferencePlusItsDifferenceScaledToTheBound() throws {
        let (model, template, updates) = try clippingSetup(spread: [0.01, 10, 0.02], seed: 5)
        let distances = updates.map { distance($0, from: model) }
        let bound = 10 * distances[2]
        XCTAssertLessThan(distances[0], bound); XCTAssertGreaterThan(distances[1], 10 * bound)
        let weights = [3.0, 5.0, 2.0]
        let scales = distances.map { min(1, bound / $0) }
        let reference = Dictionary(uniqueKeysWithValues: model.entries.map { ($0.name, $0.value.values) })
        for precision in AggregationPrecision.allCases {
            let avg = WeightedAverage(template: template, precision: precision, clipping: UpdateClipping(bound: bound, reference: model))
            for (k, u) in updates.enumerated() { try avg.add(u, weight: weights[k], client: "c\(k)", round: 1) }
            let r = try XCTUnwrap(avg.result())
            var worst = 0.0
            for (i, (name, _)) in template.enumerated() {
                let g = reference[name]!
                let expected = (0..<g.count).map { j -> Double in
                    (0..<3).reduce(0.0) { acc, k in
                        let x = Double(values(updates[k][i])[j]), gj = Double(g[j])
                        return acc + weights[k] * (gj + scales[k] * (x - gj))
                    } / weights.reduce(0, +)
                }
                for (got, want) in zip(r[name]!.values, expected) { worst = max(worst, abs(Double(got) - want)) }
            }
            XCTAssertLessThan(worst, 1e-5, "\(precision): the clipped average is off by \(worst)")
            // Without clipping the far update would have moved the average by about 5/10 of its spread.
            XCTAssertEqual(avg.totalWeight, weights.reduce(0, +))
        }
        // Into the reference itself: each value is read before it is written.
        let avg = WeightedAverage(template: template, clipping: UpdateClipping(bound: bound, reference: model))
        for (k, u) in updates.enumerated() { try avg.add(u, weight: weights[k], client: "c\(k)", round: 1) }
        let expected = try XCTUnwrap(avg.result())
        XCTAssertTrue(try avg.writeAverage(into: model))
        for e in model.entries { XCTAssertEqual(e.value.values, expected[e.name]!.values, e.name) }
    }

    /// With clipping, the distance pass finds a NaN before anything is added; a huge but
    /// finite update is not refused, only clipped.
    func testClippingRefusesNaNBeforeAddingAndClipsHugeValues() throws {
        let (model, template, updates) = try clippingSetup(spread: [0.1, 0.1], seed: 8)
        let avg = WeightedAverage(template: template, clipping: UpdateClipping(bound: 1, reference: model))
        try avg.add(updates[0], weight: 4, client: "good", round: 2)
        let before = try XCTUnwrap(avg.result())
        var poisoned = updates[1]
        let last = poisoned.count - 1
        poisoned[last] = WireTensor(name: poisoned[last].name, shape: poisoned[last].shape, floats: values(poisoned[last]).dropLast() + [.nan])
        XCTAssertThrowsError(try avg.add(poisoned, weight: 4, client: "bad", round: 2)) { error in
            XCTAssertTrue("\(error)".contains("NaN"), "\(error)")
        }
        let after = try XCTUnwrap(avg.result())
        for (name, _) in template { XCTAssertEqual(before[name]!.values, after[name]!.values, name) }
        XCTAssertEqual(avg.contributors, ["good"])

        var huge = updates[1]
        huge[0] = WireTensor(name: huge[0].name, shape: huge[0].shape, floats: values(huge[0]).map { $0 * 1e30 })
        try avg.add(huge, weight: 4, client: "huge", round: 2)
        XCTAssertGreaterThan(try XCTUnwrap(avg.lastDistance), 1e29)
        let r = try XCTUnwrap(avg.result())
        XCTAssertTrue(r.entries.allSatisfy { $0.tensor.values.allSatisfy(\.isFinite) })
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

/// Random updates (standard normal values) for `template`.
func randomUpdates(_ template: [(name: String, shape: [Int])], count: Int, seed: UInt64) -> [[WireTensor]] {
    var rng = SeededGenerator(seed: seed)
    return (0..<count).map { _ in
        template.map { entry -> WireTensor in
            let t = Tensor(zeros: entry.shape)
            t.fillNormal(std: 1, using: &rng)
            return WireTensor(name: entry.name, shape: entry.shape, floats: t.values)
        }
    }
}

/// The fraction of the whole pages in `bytes` at `start` that are resident (`mincore`).
func residentFraction(_ start: UnsafeMutableRawPointer, _ bytes: Int) -> Double {
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let lo = (Int(bitPattern: start) + page - 1) / page * page, hi = (Int(bitPattern: start) + bytes) / page * page
    guard hi > lo else { return 0 }
    var vector = [UInt8](repeating: 0, count: (hi - lo) / page)
    guard mincore(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, &vector) == 0 else { return -1 }
    return Double(vector.filter { $0 & 1 == 1 }.count) / Double(vector.count)
}
