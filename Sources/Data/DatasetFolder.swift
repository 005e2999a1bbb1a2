// A user's own multi-domain dataset on disk:
//
//   root/
//     mnist/  train.npz  test.npz
//     svhn/   train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz  t10k-...
//     ...
//
// one sub-folder per domain, each with a train and a test split in any supported
// format (see `DatasetFolder.load`).

import Foundation

/// Loads multi-domain datasets laid out as one folder per domain.
public enum DatasetFolder {
    /// Loads every domain under `root` (or only `domains`, in that order).
    ///
    /// For each split (`train`, `test`), the first of these found in the domain's
    /// folder is read:
    /// 1. `SPLIT.npz` (arrays `x`/`y` or `images`/`labels`);
    /// 2. `SPLIT-images.npy` and `SPLIT-labels.npy`;
    /// 3. `SPLIT-images-idx3-ubyte` and `SPLIT-labels-idx1-ubyte`, each optionally
    ///    `.gz` (for `test`, MNIST's `t10k-` prefix works too);
    /// 4. for `train`, FedBN's `partitions/train_part*.pkl` (all of them, in order);
    ///    `SPLIT.pkl` (a pickled `(images, labels)` of NumPy arrays, as FedBN keeps them);
    /// 5. `SPLIT.bin` or CIFAR-10's `data_batch_*.bin` / `test_batch.bin`.
    /// A root holding FedBN's prepared `office_caltech_10/DOMAIN_{train,test}.pkl` or
    /// `DomainNet/DOMAIN_{train,test}.pkl` (`FedBNPrepared`) is read through those lists.
    /// A domain folder that holds only folders is an image folder (`ImageFolder`):
    /// `train/CLASS/*` and `test/CLASS/*`, or `CLASS/*` split by `options`.
    /// Images are converted to `shape` (grey → 3 channels, bilinear resize; image
    /// files with Pillow's antialiased bilinear).
    /// - Parameters:
    ///   - root: the dataset folder.
    ///   - domains: the domains to load; all sub-folders, sorted by name, when `nil`.
    ///   - shape: the model's input shape.
    ///   - options: how a class-layout image folder is split into train and test.
    /// - Throws: `DataError.missingDomain` for an absent domain folder,
    ///   `DataError.missingSplit` for a split without files, or the reader's error.
    public static func load(root: String, domains: [String]? = nil, shape: ImageShape = .digits,
                            options: ImageFolderOptions = ImageFolderOptions()) throws -> [DomainData] {
        guard ImageFolder.isDirectory(root) else { throw DataError.io(file: root, reason: "no such dataset folder") }
        if let (base, collections) = FedBNPrepared.find(at: root) {
            return try FedBNPrepared.domains(domains, base: base, collections: collections).map { name, c in
                try FedBNPrepared.load(base: base, collection: c, domain: name, shape: shape)
            }
        }
        let names = try domains ?? domainNames(root: root)
        var classNames: [String]?  // over the whole dataset, read once if an image folder needs it
        return try names.map { name in
            let folder = join(root, name)
            guard ImageFolder.isDirectory(folder) else { throw DataError.missingDomain(root: root, domain: name) }
            if let layout = ImageFolder.layout(of: folder) {
                if classNames == nil { classNames = ImageFolder.classNames(root: root) }
                return try ImageFolder.load(folder: folder, domain: name, layout: layout, classes: classNames!,
                                            shape: shape, options: options)
            }
            let train = try loadSplit("train", folder: folder, domain: name, shape: shape)
            let test = try loadSplit("test", folder: folder, domain: name, shape: shape)
            let classes = max(train.classCount, test.classCount)
            return DomainData(name: name, train: withClassCount(train, classes), test: withClassCount(test, classes))
        }
    }

    /// The domains `load(root:)` reads when none are named: the domains of FedBN's
    /// prepared collection, or the sub-folders sorted by name.
    /// - Throws: `DataError` when `root` is not a folder, holds no domain, or holds both
    ///   of FedBN's collections.
    public static func domainNames(root: String) throws -> [String] {
        guard ImageFolder.isDirectory(root) else { throw DataError.io(file: root, reason: "no such dataset folder") }
        if let (base, collections) = FedBNPrepared.find(at: root) {
            return try FedBNPrepared.domains(nil, base: base, collections: collections).map(\.0)
        }
        let names = ImageFolder.subfolders(root)
        guard !names.isEmpty else { throw DataError.malformed(file: root, reason: "no domain sub-folders") }
        return names
    }

    /// Writes domains in the layout `load` reads (`DOMAIN/train.npz`, `DOMAIN/test.npz`).
    /// - Throws: `DataError.io` when a folder or file cannot be written.
    public static func write(_ domains: [DomainData], root: String) throws {
        for d in domains {
            let folder = join(root, d.name)
            do {
                try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            } catch {
                throw DataError.io(file: folder, reason: "cannot create folder: \(error.localizedDescription)")
            }
            try NumPy.writeNPZ(d.train, to: join(folder, "train.npz"))
            try NumPy.writeNPZ(d.test, to: join(folder, "test.npz"))
        }
    }

    static func loadSplit(_ split: String, folder: String, domain: String, shape: ImageShape) throws -> Dataset {
        let fm = FileManager.default
        func exists(_ f: String) -> String? { fm.fileExists(atPath: join(folder, f)) ? join(folder, f) : nil }
        if let npz = exists("\(split).npz") { return try NumPy.load(npz: npz, domain: domain, shape: shape) }
        if let x = exists("\(split)-images.npy") {
            guard let y = exists("\(split)-labels.npy") else {
                throw DataError.io(file: join(folder, "\(split)-labels.npy"), reason: "no such file (needed with \(x))")
            }
            return try NumPy.load(images: x, labels: y, domain: domain, shape: shape)
        }
        for prefix in split == "test" ? ["test", "t10k"] : ["train"] {
            for gz in ["", ".gz"] {
                if let x = exists("\(prefix)-images-idx3-ubyte\(gz)") {
                    guard let y = exists("\(prefix)-labels-idx1-ubyte\(gz)") ?? exists("\(prefix)-labels-idx1-ubyte") else {
                        throw DataError.io(file: join(folder, "\(prefix)-labels-idx1-ubyte\(gz)"), reason: "no such file (needed with \(x))")
                    }
                    return try IDX.load(images: x, labels: y, domain: domain, shape: shape)
                }
            }
        }
        // FedBN's Digits-Five: `partitions/train_partK.pkl` (743 images each, the protocol's
        // training data), else `SPLIT.pkl`.
        if split == "train", let parts = partitionFiles(join(folder, "partitions")) {
            return concatenate(try parts.map { try Pickle.load($0, domain: domain, shape: shape) }, domain: domain)
        }
        if let pkl = exists("\(split).pkl") { return try Pickle.load(pkl, domain: domain, shape: shape) }
        if let bin = exists("\(split).bin") { return try CIFAR10.load(batches: [bin], domain: domain, shape: shape) }
        let all = ((try? fm.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        let batches = split == "train" ? all.filter { $0.hasPrefix("data_batch_") && $0.hasSuffix(".bin") }
                                       : all.filter { $0 == "test_batch.bin" }
        if !batches.isEmpty { return try CIFAR10.load(batches: batches.map { join(folder, $0) }, domain: domain, shape: shape) }
        throw DataError.missingSplit(folder: folder, split: split)
    }

    /// `train_part0.pkl`, `train_part1.pkl`, … in `folder`, in the order of their numbers; nil for none.
    static func partitionFiles(_ folder: String) -> [String]? {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        let parts = names.compactMap { name -> (Int, String)? in
            guard name.hasPrefix("train_part"), name.hasSuffix(".pkl"),
                  let k = Int(name.dropFirst("train_part".count).dropLast(".pkl".count)) else { return nil }
            return (k, join(folder, name))
        }.sorted { $0.0 < $1.0 }
        return parts.isEmpty ? nil : parts.map(\.1)
    }

    /// The images of `parts`, one after another (all already brought to the model's shape).
    static func concatenate(_ parts: [Dataset], domain: String) -> Dataset {
        let first = parts[0]
        return Dataset(domain: domain, channels: first.channels, height: first.height, width: first.width,
                       pixels: parts.flatMap(\.pixels), labels: parts.flatMap(\.labels), classCount: parts.map(\.classCount).max()!)
    }

    static func withClassCount(_ d: Dataset, _ classes: Int) -> Dataset {
        Dataset(domain: d.domain, channels: d.channels, height: d.height, width: d.width,
                pixels: d.pixels, labels: d.labels, classCount: classes)
    }

    static func join(_ a: String, _ b: String) -> String { a.hasSuffix("/") ? a + b : a + "/" + b }
}
