import XCTest
import Tensor
@testable import NN

final class ModelTests: XCTestCase {
    func testFullDigitModelHasThePublishedParameterCounts() throws {
        XCTAssertEqual(try ModelSpec.digitCNN(norm: .batch).build().parameterCount, 14_219_210)
        // FedWon's model: no BatchNorm affine (2·2816 fewer), one gain per conv channel (64 + 64 + 128 more).
        XCTAssertEqual(try ModelSpec.digitCNN(norm: .none).build().parameterCount, 14_219_210 - 5_632 + 256)
    }

    func testStateNamesKindsAndNormalizationTags() throws {
        let model = try ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 8, 8]).build()
        let names = model.entries.map(\.name)
        XCTAssertEqual(Array(names.prefix(6)), ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"])
        XCTAssertEqual(names.last, "fc3.bias")
        XCTAssertEqual(Set(names).count, names.count)
        for e in model.entries {
            XCTAssertEqual(e.isNormalization, e.name.hasPrefix("bn"), e.name)
            XCTAssertEqual(e.isBatchNorm, e.name.hasPrefix("bn"), e.name)
            XCTAssertEqual(e.kind == .buffer, e.name.hasSuffix("running_mean") || e.name.hasSuffix("running_var"), e.name)
        }
        let none = try ModelSpec.digitCNN(norm: .none, widths: [4, 4, 8, 8, 8]).build()
        XCTAssertFalse(none.entries.contains { $0.isNormalization })
        XCTAssertTrue(none.entries.contains { $0.name == "conv2.gain" })
        XCTAssertTrue(none.network.children.allSatisfy { !($0.layer is Conv2d) }, "norm none must use WSConv2d only")
        let group = try ModelSpec.digitCNN(norm: .group, widths: [4, 4, 8, 8, 8], groups: 2).build()
        XCTAssertTrue(group.entries.filter(\.isNormalization).allSatisfy { !$0.isBatchNorm && $0.layerKind == "GroupNorm" })
    }

    func testLoadingChecksEveryNameAndShapeAndNeverHalfLoads() throws {
        let model = try ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 8, 8]).build()
        let before = model.snapshot()
        var bad = model.snapshot()
        bad["conv1.weight"] = Tensor(shape: [4, 3, 5, 5], repeating: 7)
        bad["fc1.weight"] = Tensor(zeros: [8, 99])
        XCTAssertThrowsError(try model.load(bad)) { error in
            XCTAssertEqual(error as? NNError, .tensorShape(name: "fc1.weight", expected: [8, 392], actual: [8, 99]))
            XCTAssertTrue("\(error)".contains("fc1.weight") && "\(error)".contains("[8, 392]") && "\(error)".contains("[8, 99]"))
        }
        XCTAssertEqual(model.entries[0].value.values, before["conv1.weight"]!.values, "a failed load changed the model")

        var missing = model.snapshot()
        missing["bn2.running_var"] = nil
        XCTAssertThrowsError(try model.load(missing)) { XCTAssertEqual($0 as? NNError, .missingTensor(name: "bn2.running_var", expectedShape: [4])) }
        XCTAssertNoThrow(try model.load(missing, requireAll: false))

        var extra = model.snapshot()
        extra["fc4.weight"] = Tensor(zeros: [2, 2])
        XCTAssertThrowsError(try model.load(extra)) { XCTAssertEqual($0 as? NNError, .unexpectedTensor(name: "fc4.weight", shape: [2, 2])) }

        var shared = model.snapshot { !$0.isBatchNorm }
        shared["fc3.bias"]!.fill(3)
        try model.load(shared, requireAll: false)
        XCTAssertEqual(model.entries.last!.value.values, Array(repeating: 3, count: 10))
    }

    func testBadInputsAreErrorsNamingTheProblem() throws {
        let model = try ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 8, 8]).build()
        XCTAssertThrowsError(try model.forward(Tensor(zeros: [2, 3, 32, 32]), training: true)) { error in
            XCTAssertTrue("\(error)".contains("[N, 3, 28, 28]") && "\(error)".contains("[2, 3, 32, 32]"), "\(error)")
        }
        XCTAssertThrowsError(try model.forward(Tensor(zeros: [2, 1, 28, 28]), training: true))
        // BatchNorm cannot train on a single example: BatchNorm1d sees one value per feature.
        XCTAssertThrowsError(try model.forward(Tensor(zeros: [1, 3, 28, 28]), training: true)) { error in
            XCTAssertEqual(error as? NNError, .batchTooSmall(layer: "bn4", valuesPerChannel: 1))
        }
        XCTAssertNoThrow(try model.forward(Tensor(zeros: [1, 3, 28, 28]), training: false))

        let trainer = Trainer(model: model, optimizer: SGD(learningRate: 0.1))
        XCTAssertThrowsError(try trainer.step(input: Tensor(zeros: [2, 3, 28, 28]), labels: [0, 10])) {
            XCTAssertEqual($0 as? NNError, .labelOutOfRange(index: 1, label: 10, classes: 10))
        }
        XCTAssertThrowsError(try trainer.step(input: Tensor(zeros: [2, 3, 28, 28]), labels: [0])) {
            XCTAssertEqual($0 as? NNError, .labelCount(expected: 2, actual: 1))
        }
        // NaN in the input: the loss is NaN, the step throws, and the weights are untouched.
        let before = model.snapshot()
        let poisoned = Tensor(zeros: [2, 3, 28, 28]); poisoned[5] = .nan
        XCTAssertThrowsError(try trainer.step(input: poisoned, labels: [0, 1])) { error in
            guard case .nonFiniteLoss = error as? NNError else { return XCTFail("\(error)") }
        }
        for e in model.parameters { XCTAssertEqual(e.value.values, before[e.name]!.values, e.name) }
        XCTAssertThrowsError(try ModelSpec.digitCNN(norm: .group, widths: [6, 4, 8, 8, 8], groups: 4).build()) { error in
            XCTAssertTrue("\(error)".contains("--groups 4") && "\(error)".contains("6 channels"), "\(error)")
        }
        XCTAssertThrowsError(try ModelSpec(architecture: .alexnet, norm: .batch, inputSize: 32).build())
    }

    /// A fixed-seed fit: every norm learns a small synthetic task; FedWon's model even at batch 1.
    func testEveryNormFitsASmallDatasetAndNoneTrainsAtBatchSizeOne() throws {
        // 40 images: a bright 6×6 square at a class-specific position, plus noise.
        var rng = SeededGenerator(seed: 11)
        let count = 40, classes = 5
        let images = Tensor(zeros: [count, 3, 28, 28])
        var labels: [Int] = []
        for i in 0..<count {
            let y = i % classes
            labels.append(y)
            for j in 0..<(3 * 28 * 28) { images[i * 2352 + j] = 0.3 * rng.nextNormal() }
            for c in 0..<3 { for r in 0..<6 { for q in 0..<6 { images[i * 2352 + c * 784 + (4 + r) * 28 + 4 * y + q] += 1.5 } } }
        }
        func meanLoss(_ trainer: Trainer) throws -> Float {
            try trainer.evaluate(input: images, labels: labels).loss
        }
        for norm in Norm.allCases {
            let model = try ModelSpec.digitCNN(norm: norm, widths: [8, 8, 8, 32, 16], groups: 2, seed: 3).build()
            let batch = norm == .none ? 1 : 8
            let trainer = Trainer(model: model, optimizer: SGD(learningRate: norm == .none ? 0.01 : 0.05, momentum: 0.9),
                                  clipping: norm == .none ? AdaptiveGradientClipping(clipping: 0.1, excluded: ["fc3"]) : nil)
            if norm == .batch { _ = try trainer.step(input: images.slice(0..<8), labels: Array(labels[0..<8])) }
            let start = try meanLoss(trainer)
            var step = 0
            while step < 200 {
                let lo = (step * batch) % count
                _ = try trainer.step(input: images.slice(lo..<(lo + batch)), labels: Array(labels[lo..<(lo + batch)]))
                step += 1
            }
            let end = try meanLoss(trainer)
            XCTAssertLessThan(end, 0.25 * start, "norm \(norm): loss \(start) → \(end)")
        }
    }
}
