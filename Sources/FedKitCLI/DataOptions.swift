import ArgumentParser
import Data
import Federated
import Foundation

/// Where a client's data comes from and which share of it the client owns.
public struct DataOptions: ParsableArguments {
    @Option(help: "The client's data: digits5:DOMAIN (built-in: mnist, usps, svhn, synth, mnistm) or FOLDER:DOMAIN (a multi-domain dataset folder).")
    public var data: String?
    @Option(help: "This client's shard of its domain, i/n (client i of n splitting the domain; default 0/1).")
    public var partition: String?
    @Option(help: "Fraction of the domain's training split used before sharding (the FedBN protocol uses 0.1: 743 images).")
    public var dataFraction: Double?
    @Option(help: "digits5 only: training images generated per domain (default 7438, the FedBN protocol).")
    public var trainCount: Int?
    @Option(help: "digits5: test images generated per domain (default 1860); a dataset folder: at most this many of its test images, the first (default: all).")
    public var testCount: Int?
    @Option(help: "Seed of data generation and partitioning.")
    public var dataSeed: UInt64?
    @Option(help: "An image folder of DOMAIN/CLASS/* without train/ and test/: the share of each class held out for test, by a split seeded with --data-seed (default 0.2).")
    public var testSplit: Double?
    @Option(help: "Random transforms of training samples, seeded per round, client and sample: none (default), flip, rotate:D, or both, e.g. flip,rotate:30 (FedBN's Office-Caltech-10 and DomainNet training). Evaluation is never augmented.")
    public var augment: String?
    public init() {}

    /// Loads the data, brought to the model's input `shape` (grey → 3 channels, resized), and cuts out
    /// this client's shard.
    /// - Throws: `ValidationError` quoting the bad value, or the data module's error naming the file.
    public func load(_ config: ConfigFile, shape: ImageShape = .digits) throws -> LocalData {
        guard let spec = try config.resolve(data, "data") else {
            throw ValidationError("--data is required, e.g. --data digits5:svhn or --data /data/digits:svhn")
        }
        guard let colon = spec.lastIndex(of: ":") else {
            throw ValidationError("--data (\(spec)) must be digits5:DOMAIN or FOLDER:DOMAIN")
        }
        let source = String(spec[..<colon]), domain = String(spec[spec.index(after: colon)...])
        let seed = try config.resolve(dataSeed, "data-seed", 1)
        let domainData: DomainData
        if source == "digits5" {
            guard let d = Digits5.Domain(rawValue: domain) else {
                throw ValidationError("--data \(spec): unknown digits5 domain \(domain); expected one of \(Digits5.Domain.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let train = try config.resolve(trainCount, "train-count", Digits5.protocolTrainCount)
            let test = try config.resolve(testCount, "test-count", Digits5.protocolTestCount)
            guard train >= 10, test >= 10 else { throw ValidationError("--train-count (\(train)) and --test-count (\(test)) must be at least 10") }
            domainData = try DataSource.digits5(trainCount: train, testCount: test).load(domains: [d.rawValue], seed: seed, shape: shape)[0]
        } else {
            let split = try config.resolve(testSplit, "test-split", 0.2)
            guard split >= 0 && split < 1 else { throw ValidationError("--test-split (\(split)) must be in [0, 1)") }
            var d = try DatasetFolder.load(root: source, domains: [domain], shape: shape,
                                           options: ImageFolderOptions(testSplit: split, seed: seed))[0]
            if let limit = try config.resolve(testCount, "test-count") {
                guard limit >= 1 else { throw ValidationError("--test-count (\(limit)) must be at least 1") }
                if limit < d.test.count { d.test = d.test.subset(Array(0..<limit)) }
            }
            domainData = d
        }
        let shardText = try config.resolve(partition, "partition", "0/1")
        let parts = shardText.split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, parts[0] >= 0, parts[0] < parts[1] else {
            throw ValidationError("--partition (\(shardText)) must be i/n with 0 ≤ i < n")
        }
        let fraction = try config.resolve(dataFraction, "data-fraction", 1.0)
        guard fraction > 0 && fraction <= 1 else { throw ValidationError("--data-fraction (\(fraction)) must be in (0, 1]") }
        let clients = try Partitioner.partition([domainData], spec: .domain(clientsPerDomain: parts[1]), fraction: fraction, seed: seed)
        let augmentText = try config.resolve(augment, "augment", "none")
        let augmentation: Augmentation
        do { augmentation = try Augmentation(parsing: augmentText) } catch { throw ValidationError("--augment \(error)") }
        return LocalData(train: domainData.train, trainIndices: clients[parts[0]].trainIndices, test: domainData.test,
                         augmentation: augmentation)
    }
}
