import XCTest
@testable import Data
import Tensor

final class PartitionTests: XCTestCase {
    /// Labels 0..<classes repeated, shuffled deterministically.
    func labels(_ n: Int, classes: Int = 10, seed: UInt64 = 1) -> [Int32] {
        var l = (0..<n).map { Int32($0 % classes) }
        var rng = SeededGenerator(seed: seed)
        rng.shuffle(&l)
        return l
    }

    func testParsesSpecs() throws {
        XCTAssertEqual(try PartitionSpec(parsing: "domain"), .domain(clientsPerDomain: 1))
        XCTAssertEqual(try PartitionSpec(parsing: "domain:20"), .domain(clientsPerDomain: 20))
        XCTAssertEqual(try PartitionSpec(parsing: "dirichlet:0.5"), .dirichlet(alpha: 0.5))
        XCTAssertEqual(try PartitionSpec(parsing: " IID "), .iid)
        for spec in ["domain", "domain:20", "dirichlet:0.5", "iid"] {
            XCTAssertEqual(try PartitionSpec(parsing: spec).description, spec)
        }
    }

    func testRejectsBadSpecsQuotingThem() {
        for bad in ["domain:0", "domain:x", "dirichlet", "dirichlet:-1", "dirichlet:abc", "iid:3", "shards:2", ""] {
            XCTAssertThrowsError(try PartitionSpec(parsing: bad), bad) { error in
                XCTAssertTrue("\(error)".contains("\"\(bad)\""), "error for \(bad) does not quote it: \(error)")
            }
        }
    }

    func testDomainPartitionOneClientPerDomainCoversEverything() throws {
        let sets = [labels(100), labels(80, seed: 2), labels(60, seed: 3)]
        let clients = try Partitioner.partition(trainLabels: sets, domainNames: ["a", "b", "c"],
                                                spec: .domain(clientsPerDomain: 1), seed: 0)
        XCTAssertEqual(clients.map(\.name), ["a-0", "b-0", "c-0"])
        for (d, c) in clients.enumerated() {
            XCTAssertEqual(c.domainIndex, d)
            XCTAssertEqual(c.trainIndices, Array(0..<sets[d].count))
        }
    }

    func testFractionIsStratifiedAndMatchesFedBN() throws {
        let sets = [labels(Digits5.protocolTrainCount), labels(Digits5.protocolTrainCount, seed: 5)]
        let clients = try Partitioner.partition(trainLabels: sets, domainNames: ["x", "y"], spec: .domain(clientsPerDomain: 1),
                                                fraction: Digits5.protocolFraction, seed: 7)
        for c in clients {
            XCTAssertEqual(c.trainIndices.count, 743)  // ⌊0.1 × 7438⌋, FedBN's client size
            XCTAssertEqual(Set(c.trainIndices).count, c.trainIndices.count)
            var h = [Int](repeating: 0, count: 10)
            for i in c.trainIndices { h[Int(sets[c.domainIndex][i])] += 1 }
            XCTAssertLessThanOrEqual(h.max()! - h.min()!, 1, "fraction is not stratified: \(h)")
        }
    }

    func testDomainKSplitsEvenlyAndExactlyOnce() throws {
        let sets = [labels(103), labels(50, seed: 9)]
        let clients = try Partitioner.partition(trainLabels: sets, domainNames: ["a", "b"], spec: .domain(clientsPerDomain: 4), seed: 3)
        XCTAssertEqual(clients.count, 8)
        XCTAssertEqual(clients.map(\.name), ["a-0", "a-1", "a-2", "a-3", "b-0", "b-1", "b-2", "b-3"])
        XCTAssertEqual(clients.filter { $0.domain == "a" }.map(\.trainIndices.count), [26, 26, 26, 25])
        assertExactlyOnce(clients, sizes: [103, 50])
        // Deterministic from the seed, and a different seed gives a different split.
        let again = try Partitioner.partition(trainLabels: sets, domainNames: ["a", "b"], spec: .domain(clientsPerDomain: 4), seed: 3)
        XCTAssertEqual(clients, again)
        let other = try Partitioner.partition(trainLabels: sets, domainNames: ["a", "b"], spec: .domain(clientsPerDomain: 4), seed: 4)
        XCTAssertNotEqual(clients, other)
    }

    func testDomainSplitDoesNotDependOnOtherDomains() throws {
        let a = labels(90), b = labels(70, seed: 2)
        let both = try Partitioner.partition(trainLabels: [a, b], domainNames: ["a", "b"], spec: .dirichlet(alpha: 0.5),
                                             clientsPerDomain: 3, fraction: 0.5, seed: 8)
        let alone = try Partitioner.partition(trainLabels: [b], domainNames: ["b"], spec: .dirichlet(alpha: 0.5),
                                              clientsPerDomain: 3, fraction: 0.5, seed: 8)
        XCTAssertEqual(both.filter { $0.domain == "b" }.map(\.trainIndices), alone.map(\.trainIndices))
    }

    func testIIDKeepsClassMixEverywhere() throws {
        let clients = try Partitioner.partition(trainLabels: [labels(2000)], domainNames: ["cifar"], spec: .iid,
                                                clientsPerDomain: 5, seed: 1)
        XCTAssertEqual(clients.map(\.trainIndices.count), [400, 400, 400, 400, 400])
        assertExactlyOnce(clients, sizes: [2000])
    }

    func testDirichletEveryClientNonEmptyAndExactlyOnce() throws {
        for alpha in [0.01, 0.1, 1, 100] {
            let clients = try Partitioner.partition(trainLabels: [labels(500), labels(300, seed: 4)], domainNames: ["a", "b"],
                                                    spec: .dirichlet(alpha: alpha), clientsPerDomain: 10, seed: 2)
            XCTAssertEqual(clients.count, 20)
            XCTAssertTrue(clients.allSatisfy { !$0.trainIndices.isEmpty }, "alpha \(alpha): an empty client")
            assertExactlyOnce(clients, sizes: [500, 300])
        }
    }

    func testDirichletSkewStrongerAtSmallAlpha() throws {
        let l = labels(5000)
        func meanSkew(_ alpha: Double) throws -> Double {
            let clients = try Partitioner.partition(trainLabels: [l], domainNames: ["d"], spec: .dirichlet(alpha: alpha),
                                                    clientsPerDomain: 10, seed: 11)
            // Total-variation distance between each client's label distribution and uniform.
            var total = 0.0
            for c in clients {
                var h = [Double](repeating: 0, count: 10)
                for i in c.trainIndices { h[Int(l[i])] += 1 }
                total += h.reduce(0) { $0 + abs($1 / Double(c.trainIndices.count) - 0.1) } / 2
            }
            return total / Double(clients.count)
        }
        let skewed = try meanSkew(0.1), mild = try meanSkew(100)
        XCTAssertGreaterThan(skewed, 0.5, "alpha 0.1 should be strongly skewed")
        XCTAssertLessThan(mild, 0.1, "alpha 100 should be nearly uniform")
    }

    func testTooManyClientsIsAnError() {
        XCTAssertThrowsError(try Partitioner.partition(trainLabels: [labels(3)], domainNames: ["tiny"],
                                                       spec: .domain(clientsPerDomain: 5), seed: 0)) { error in
            XCTAssertTrue("\(error)".contains("tiny"), "\(error)")
        }
    }

    func testSummaryListsClientsAndHistograms() throws {
        let domains = Digits5.makeDomains([.mnist, .svhn], trainCount: 40, testCount: 20, seed: 1)
        let clients = try Partitioner.partition(domains, spec: .domain(clientsPerDomain: 2), seed: 1)
        XCTAssertEqual(clients[3].trainingData(domains), domains[1].train.subset(clients[3].trainIndices))
        XCTAssertEqual(clients[3].testData(domains), domains[1].test)
        let text = Partitioner.summary(clients, domains: domains)
        XCTAssertTrue(text.contains("svhn-1"), text)
        XCTAssertTrue(text.contains("4 clients, 80 training examples"), text)
        let row = text.split(separator: "\n").first { $0.hasPrefix("mnist-0") }!
        let numbers = row.split(separator: " ").dropFirst(2).compactMap { Int($0) }
        XCTAssertEqual(numbers.count, 12)  // train, test, 10 classes
        XCTAssertEqual(numbers[0], 20)
        XCTAssertEqual(numbers[1], 20)
        XCTAssertEqual(numbers[2...].reduce(0, +), 20)
    }

    func assertExactlyOnce(_ clients: [ClientPartition], sizes: [Int], file: StaticString = #filePath, line: UInt = #line) {
        for (d, n) in sizes.enumerated() {
            let all = clients.filter { $0.domainIndex == d }.flatMap(\.trainIndices)
            XCTAssertEqual(all.sorted(), Array(0..<n), "domain \(d): not every index exactly once", file: file, line: line)
        }
    }
}

final class BatchingTests: XCTestCase {
    func tiny() -> Dataset {
        // Five 2-channel 1×2 images; image i has bytes [i, 255, 0, 2i].
        var px: [UInt8] = []
        for i in 0..<5 { px += [UInt8(i), 255, 0, UInt8(2 * i)] }
        return Dataset(domain: "t", channels: 2, height: 1, width: 2, pixels: px, labels: [0, 1, 2, 3, 4], classCount: 5)
    }

    func testNormalizationPerChannel() {
        let ds = tiny()
        let out = Normalization.fedBN.apply(to: ds, indices: [1])
        XCTAssertEqual(out[0], (1 / 255 - 0.5) / 0.5, accuracy: 1e-6)
        XCTAssertEqual(out[1], 1, accuracy: 1e-6)
        XCTAssertEqual(out[2], -1, accuracy: 1e-6)
        let custom = Normalization(mean: [0, 0.5], std: [1, 0.25]).apply(to: ds, indices: [2])
        XCTAssertEqual(custom[1], 1.0, accuracy: 1e-6)      // channel 0: 255/255
        XCTAssertEqual(custom[3], (4 / 255 - 0.5) / 0.25, accuracy: 1e-6)
    }

    func testBatchesCoverEpochAndReshuffle() {
        let ds = tiny()
        var it = BatchIterator(dataset: ds, batchSize: 2, seed: 5, normalization: .unit)
        XCTAssertEqual(it.batchesPerEpoch, 3)
        var batch = Batch()
        var epochs: [[Int32]] = []
        for _ in 0..<4 {
            var seen: [Int32] = []
            var sizes: [Int] = []
            while it.next(into: &batch) {
                sizes.append(batch.count)
                XCTAssertEqual(batch.shape, [batch.count, 2, 1, 2])
                for k in 0..<batch.count {
                    seen.append(batch.labels[k])
                    // The image matches its label (image i has first byte i).
                    XCTAssertEqual(batch.images[k * 4], Float(batch.labels[k]) / 255, accuracy: 1e-6)
                    XCTAssertEqual(batch.images[k * 4 + 3], Float(2 * batch.labels[k]) / 255, accuracy: 1e-6)
                }
            }
            XCTAssertEqual(sizes, [2, 2, 1])
            XCTAssertEqual(seen.sorted(), [0, 1, 2, 3, 4])
            epochs.append(seen)
        }
        XCTAssertEqual(it.epoch, 4)
        XCTAssertGreaterThan(Set(epochs).count, 1, "every epoch had the same order")
        // The same seed replays the same epochs; start(epoch:) jumps to one.
        var replay = BatchIterator(dataset: ds, batchSize: 2, seed: 5, normalization: .unit)
        replay.start(epoch: 2)
        var seen: [Int32] = []
        while replay.next(into: &batch) { seen += batch.labels[0..<batch.count] }
        XCTAssertEqual(seen, epochs[2])
    }

    func testSubsetNoShuffleDropLast() {
        let ds = tiny()
        var it = BatchIterator(dataset: ds, indices: [4, 0, 3], batchSize: 2, shuffle: false, normalization: .unit, dropLast: true)
        XCTAssertEqual(it.batchesPerEpoch, 1)
        var batch = Batch()
        XCTAssertTrue(it.next(into: &batch))
        XCTAssertEqual(Array(batch.labels[0..<2]), [4, 0])
        XCTAssertFalse(it.next(into: &batch))
        XCTAssertEqual(batch.count, 0)
    }

    func testSeededGeneratorIsStable() {
        // Pinned values: a change here changes every dataset and partition.
        var g = SeededGenerator(seed: 42)
        let first = (0..<3).map { _ in g.next() }
        var h = SeededGenerator(seed: 42)
        XCTAssertEqual(first, (0..<3).map { _ in h.next() })
        XCTAssertNotEqual(first, { var x = SeededGenerator(seed: 43); return (0..<3).map { _ in x.next() } }())
        let d = g.nextDirichlet(alpha: 0.5, count: 6)
        XCTAssertEqual(d.reduce(0, +), 1, accuracy: 1e-9)
        XCTAssertTrue(d.allSatisfy { $0 >= 0 })
    }
}

final class DataSourceTests: XCTestCase {
    func testParsesAndLoadsDigits5() throws {
        XCTAssertEqual(try DataSource(parsing: "digits5"), .digits5(trainCount: 7438, testCount: 1860))
        let source = try DataSource(parsing: "digits5:20:10")
        XCTAssertEqual(source.description, "digits5:20:10")
        let domains = try source.load(domains: ["svhn", "usps"], seed: 2)
        XCTAssertEqual(domains.map(\.name), ["svhn", "usps"])
        XCTAssertEqual(domains[0].train, Digits5.generate(domain: .svhn, count: 20, seed: 2, split: .train))
        XCTAssertEqual(domains[1].test.count, 10)
        let big = try source.load(domains: ["mnist"], seed: 2, shape: ImageShape(channels: 3, height: 32, width: 32))
        XCTAssertEqual([big[0].train.height, big[0].train.width], [32, 32])
        XCTAssertEqual(try DataSource(parsing: "/data/mine"), .folder(path: "/data/mine"))
    }

    func testRejectsBadValuesQuotingThem() {
        for bad in ["digits5:abc:1", "digits5:100", "digits5:5:5", ""] {
            XCTAssertThrowsError(try DataSource(parsing: bad)) { XCTAssertTrue("\($0)".contains("\"\(bad)\""), "\($0)") }
        }
        XCTAssertThrowsError(try DataSource.digits5(trainCount: 10, testCount: 10).load(domains: ["kmnist"], seed: 0)) {
            XCTAssertTrue("\($0)".contains("\"kmnist\""), "\($0)")
        }
    }
}
