// The one entry point executables need: a textual data source (`digits5` or a
// dataset folder) turned into domains.

import Foundation

/// Where a federation's data comes from, as written on a command line.
public enum DataSource: Sendable, Equatable, CustomStringConvertible {
    /// The built-in `digits5` benchmark with this many training and test images per domain.
    case digits5(trainCount: Int, testCount: Int)
    /// A folder with one sub-folder per domain (see `DatasetFolder`).
    case folder(path: String)

    /// Parses `digits5` (FedBN protocol sizes: 7,438 train and 1,860 test images per
    /// domain), `digits5:TRAIN:TEST` (e.g. `digits5:2000:500`), or a folder path.
    /// - Throws: `DataError.invalidSpec` quoting a malformed `digits5:` value.
    public init(parsing text: String) throws {
        if text == "digits5" {
            self = .digits5(trainCount: Digits5.protocolTrainCount, testCount: Digits5.protocolTestCount)
            return
        }
        if text.hasPrefix("digits5:") {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, let train = Int(parts[1]), let test = Int(parts[2]), train >= 10, test >= 10 else {
                throw DataError.invalidSpec(value: text, reason: "expected digits5 or digits5:TRAIN:TEST with at least 10 images each")
            }
            self = .digits5(trainCount: train, testCount: test)
            return
        }
        guard !text.isEmpty else { throw DataError.invalidSpec(value: text, reason: "expected digits5 or a dataset folder") }
        self = .folder(path: text)
    }

    public var description: String {
        switch self {
        case let .digits5(train, test):
            train == Digits5.protocolTrainCount && test == Digits5.protocolTestCount ? "digits5" : "digits5:\(train):\(test)"
        case let .folder(path): path
        }
    }

    /// Loads (or generates) domains.
    /// - Parameters:
    ///   - domains: which domains, in this order; all when `nil` (digits5: mnist, usps,
    ///     svhn, synth, mnistm; a folder: its sub-folders sorted by name).
    ///   - seed: generation seed for `digits5`; a class-layout image folder's split seed.
    ///   - shape: the model's input; digits5 images are resized if it is not 3×28×28.
    ///   - testSplit: the test share of a class-layout image folder (split with `seed`).
    /// - Throws: `DataError.invalidSpec` for an unknown digits5 domain, or any reader error.
    public func load(domains: [String]? = nil, seed: UInt64, shape: ImageShape = .digits,
                     testSplit: Double = 0.2) throws -> [DomainData] {
        switch self {
        case let .folder(path):
            return try DatasetFolder.load(root: path, domains: domains, shape: shape,
                                          options: ImageFolderOptions(testSplit: testSplit, seed: seed))
        case let .digits5(trainCount, testCount):
            let names = domains ?? Digits5.Domain.allCases.map(\.rawValue)
            let selected = try names.map { name -> Digits5.Domain in
                guard let d = Digits5.Domain(rawValue: name) else {
                    throw DataError.invalidSpec(value: name, reason: "unknown digits5 domain; expected one of "
                        + Digits5.Domain.allCases.map(\.rawValue).joined(separator: ", "))
                }
                return d
            }
            return Digits5.makeDomains(selected, trainCount: trainCount, testCount: testCount, seed: seed).map { d in
                guard shape != .digits else { return d }
                func resize(_ ds: Dataset) -> Dataset {
                    let (px, s) = conform(ds.pixels, count: ds.count, channels: ds.channels, height: ds.height,
                                          width: ds.width, to: shape)
                    return Dataset(domain: ds.domain, channels: s.channels, height: s.height, width: s.width,
                                   pixels: px, labels: ds.labels, classCount: ds.classCount)
                }
                return DomainData(name: d.name, train: resize(d.train), test: resize(d.test))
            }
        }
    }
}
