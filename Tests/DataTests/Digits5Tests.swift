import XCTest
@testable import Data
import Tensor

final class Digits5Tests: XCTestCase {
    func testSameSeedGivesIdenticalBytes() {
        for domain in Digits5.Domain.allCases {
            let a = Digits5.generate(domain: domain, count: 40, seed: 11, split: .train)
            let b = Digits5.generate(domain: domain, count: 40, seed: 11, split: .train)
            XCTAssertEqual(a, b, "\(domain) is not reproducible")
            XCTAssertEqual(a.pixels.count, 40 * 3 * 28 * 28)
            XCTAssertEqual(a.domain, domain.rawValue)
        }
    }

    func testDifferentSeedsAndSplitsDiffer() {
        for domain in Digits5.Domain.allCases {
            let a = Digits5.generate(domain: domain, count: 20, seed: 1, split: .train)
            let b = Digits5.generate(domain: domain, count: 20, seed: 2, split: .train)
            let t = Digits5.generate(domain: domain, count: 20, seed: 1, split: .test)
            XCTAssertNotEqual(a.pixels, b.pixels, "\(domain): seeds 1 and 2 gave the same images")
            XCTAssertNotEqual(a.pixels, t.pixels, "\(domain): train and test splits are the same images")
            // No two images within a dataset are identical.
            let distinct = Set((0..<a.count).map { Array(a.image($0)) })
            XCTAssertEqual(distinct.count, a.count, "\(domain) repeats images")
        }
    }

    func testLongerDatasetExtendsShorter() {
        let short = Digits5.generate(domain: .svhn, count: 15, seed: 5)
        let long = Digits5.generate(domain: .svhn, count: 30, seed: 5)
        XCTAssertEqual(short, long.subset(Array(0..<15)))
    }

    func testEveryClassInEverySplitBalanced() {
        for domain in Digits5.Domain.allCases {
            for split in Digits5.Split.allCases {
                let ds = Digits5.generate(domain: domain, count: 100, seed: 3, split: split)
                XCTAssertEqual(ds.classHistogram(), [Int](repeating: 10, count: 10), "\(domain) \(split)")
            }
        }
        // Labels are not simply 0,1,2,...: they are shuffled within each block of ten.
        let ds = Digits5.generate(domain: .mnist, count: 30, seed: 3)
        XCTAssertNotEqual(ds.labels.map(Int.init), (0..<30).map { $0 % 10 })
    }

    func testProtocolDomains() {
        let domains = Digits5.makeDomains([.usps, .mnistm], trainCount: 50, testCount: 20, seed: 0)
        XCTAssertEqual(domains.map(\.name), ["usps", "mnistm"])
        XCTAssertEqual(domains[0].train.count, 50)
        XCTAssertEqual(domains[1].test.count, 20)
        XCTAssertEqual(Int(Double(Digits5.protocolTrainCount) * Digits5.protocolFraction), 743)
    }

    /// The domains differ in the statistics a BatchNorm layer would see.
    func testPerDomainPixelStatisticsDiffer() {
        var stats: [String: (mean: [Double], std: [Double])] = [:]
        for domain in Digits5.Domain.allCases {
            stats[domain.rawValue] = Digits5.generate(domain: domain, count: 300, seed: 9).channelStatistics()
        }
        // Grey domains: equal channels, dark background.
        for g in ["mnist", "usps"] {
            let s = stats[g]!
            XCTAssertEqual(s.mean[0], s.mean[1], accuracy: 1e-9)
            XCTAssertLessThan(s.mean[0], 0.35, g)
        }
        // Colour domains: bright on average.
        for c in ["svhn", "synth", "mnistm"] { XCTAssertGreaterThan(stats[c]!.mean[0], 0.35, c) }
        // Every pair differs in at least one channel's mean or std by a clear margin.
        let names = stats.keys.sorted()
        for i in 0..<names.count {
            for j in (i + 1)..<names.count {
                let a = stats[names[i]]!, b = stats[names[j]]!
                var gap = 0.0
                for c in 0..<3 { gap = max(gap, abs(a.mean[c] - b.mean[c]), abs(a.std[c] - b.std[c])) }
                XCTAssertGreaterThan(gap, 0.03, "\(names[i]) and \(names[j]) have the same pixel statistics")
            }
        }
        // USPS fills the frame: more ink than MNIST.
        XCTAssertGreaterThan(stats["usps"]!.mean[0], stats["mnist"]!.mean[0] + 0.03)
        // SVHN and USPS are blurred: their sharpest edges are softer than sharp synth's and MNIST's.
        let edge = Dictionary(uniqueKeysWithValues: Digits5.Domain.allCases.map {
            ($0, meanSharpestEdge(Digits5.generate(domain: $0, count: 200, seed: 4)))
        })
        XCTAssertLessThan(edge[.svhn]!, edge[.synth]! - 20, "\(edge)")
        XCTAssertLessThan(edge[.usps]!, edge[.mnist]! - 20, "\(edge)")
    }

    /// A model trained on one domain does much worse on the others.
    func testDomainShift() {
        let train = Digits5.generate(domain: .mnist, count: 2000, seed: 21, split: .train)
        var model = SoftmaxRegression(features: train.imageSize, classes: 10)
        model.fit(train, epochs: 8, learningRate: 0.05, seed: 1)
        var accuracy: [Digits5.Domain: Double] = [:]
        for domain in Digits5.Domain.allCases {
            accuracy[domain] = model.accuracy(Digits5.generate(domain: domain, count: 500, seed: 21, split: .test))
        }
        let report = accuracy.map { "\($0.key): \(String(format: "%.3f", $0.value))" }.sorted().joined(separator: ", ")
        print("domain shift, softmax regression trained on mnist:", report)
        XCTAssertGreaterThan(accuracy[.mnist]!, 0.85, report)
        XCTAssertLessThan(accuracy[.svhn]!, accuracy[.mnist]! - 0.4, report)
        XCTAssertLessThan(accuracy[.mnistm]!, accuracy[.mnist]! - 0.3, report)
    }

    /// Mean over images of the largest jump between horizontally adjacent pixels.
    func meanSharpestEdge(_ ds: Dataset) -> Double {
        var total = 0.0
        for i in 0..<ds.count {
            let img = Array(ds.image(i))
            var largest = 0
            for c in 0..<3 {
                for y in 0..<28 {
                    for x in 0..<27 {
                        let k = c * 784 + y * 28 + x
                        largest = max(largest, abs(Int(img[k]) - Int(img[k + 1])))
                    }
                }
            }
            total += Double(largest)
        }
        return total / Double(ds.count)
    }
}

/// Multinomial logistic regression with plain loops, inputs normalized with mean
/// 0.5, std 0.5: enough to show domain shift without the NN module.
struct SoftmaxRegression {
    let features: Int, classes: Int
    var weight: [Float], bias: [Float]

    init(features: Int, classes: Int) {
        self.features = features
        self.classes = classes
        weight = [Float](repeating: 0, count: features * classes)
        bias = [Float](repeating: 0, count: classes)
    }

    func input(_ ds: Dataset, _ i: Int) -> [Float] {
        ds.image(i).map { (Float($0) / 255 - 0.5) / 0.5 }
    }

    func logits(_ x: [Float]) -> [Float] {
        (0..<classes).map { k in
            var s = bias[k]
            for f in 0..<features { s += weight[k * features + f] * x[f] }
            return s
        }
    }

    mutating func fit(_ ds: Dataset, epochs: Int, learningRate: Float, seed: UInt64) {
        var rng = SeededGenerator(seed: seed)
        let inputs = (0..<ds.count).map { input(ds, $0) }
        for epoch in 0..<epochs {
            let lr = learningRate / Float(1 + epoch)
            for i in rng.permutation(ds.count) {
                let x = inputs[i]
                var z = logits(x)
                let m = z.max()!
                var sum: Float = 0
                for k in 0..<classes { z[k] = expf(z[k] - m); sum += z[k] }
                for k in 0..<classes {
                    let g = z[k] / sum - (k == Int(ds.labels[i]) ? 1 : 0)
                    bias[k] -= lr * g
                    for f in 0..<features { weight[k * features + f] -= lr * g * x[f] }
                }
            }
        }
    }

    func accuracy(_ ds: Dataset) -> Double {
        var correct = 0
        for i in 0..<ds.count {
            let z = logits(input(ds, i))
            if z.indices.max(by: { z[$0] < z[$1] })! == Int(ds.labels[i]) { correct += 1 }
        }
        return Double(correct) / Double(ds.count)
    }
}
