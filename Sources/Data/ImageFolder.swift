// Folders of image files, as torchvision's ImageFolder reads them:
//
//   root/DOMAIN/train/CLASS/*.jpg   root/DOMAIN/test/CLASS/*.jpg     (split layout)
//   root/DOMAIN/CLASS/*.jpg                                           (class layout)
//
// The class layout is split into train and test by a seeded stratified split.
// Every file in a class folder is an image (recognized by its content, JPEG or
// PNG); only hidden files (".DS_Store") are passed over. The class index is the
// sorted list of class-folder names over the whole dataset, so every domain, and
// every client loading only its own domain, gives a label the same meaning.

import Dispatch
import Foundation
import Tensor

/// How a class-layout image folder is split into train and test.
public struct ImageFolderOptions: Sendable, Equatable {
    /// Share of each class's images (per domain) that goes to the test split, in [0, 1).
    public var testSplit: Double
    /// Seed of the split (together with the domain and class names).
    public var seed: UInt64

    public init(testSplit: Double = 0.2, seed: UInt64 = 0) {
        self.testSplit = testSplit
        self.seed = seed
    }
}

/// Reads domains stored as folders of JPEG and PNG files.
enum ImageFolder {
    /// How a domain folder holds its images.
    enum Layout: Equatable {
        /// `train/CLASS/*` and `test/CLASS/*`.
        case split
        /// `CLASS/*`, split by `ImageFolderOptions`.
        case classes
    }

    /// The image-folder layout of `folder`, or nil when it holds files (an array format).
    static func layout(of folder: String) -> Layout? {
        if isDirectory(DatasetFolder.join(folder, "train")) { return .split }
        let entries = visibleEntries(folder)
        guard !entries.isEmpty, entries.allSatisfy({ isDirectory(DatasetFolder.join(folder, $0)) }),
              !entries.contains("partitions") else { return nil }
        return .classes
    }

    /// The sorted class-folder names of every image-folder domain under `root`.
    static func classNames(root: String) -> [String] {
        var names = Set<String>()
        for domain in visibleEntries(root) {
            let folder = DatasetFolder.join(root, domain)
            switch layout(of: folder) {
            case .split:
                for split in ["train", "test"] { names.formUnion(subfolders(DatasetFolder.join(folder, split))) }
            case .classes:
                names.formUnion(subfolders(folder))
            case nil:
                break
            }
        }
        return names.sorted()
    }

    /// Loads one domain's train and test splits, labels indexing `classes`.
    static func load(folder: String, domain: String, layout: Layout, classes: [String],
                     shape: ImageShape, options: ImageFolderOptions) throws -> DomainData {
        let index = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, Int32($0)) })
        func files(in splitFolder: String) throws -> [(path: String, label: Int32)] {
            let found = subfolders(splitFolder)
            guard !found.isEmpty else {
                throw DataError.malformed(file: splitFolder, reason: "no class folders (expected CLASS/IMAGE files)")
            }
            var out: [(String, Int32)] = []
            for name in found {
                let classFolder = DatasetFolder.join(splitFolder, name)
                let images = visibleEntries(classFolder)
                guard !images.isEmpty else {
                    throw DataError.malformed(file: classFolder, reason: "class folder \"\(name)\" holds no images")
                }
                for file in images {
                    let path = DatasetFolder.join(classFolder, file)
                    guard !isDirectory(path) else {
                        throw DataError.malformed(file: path, reason: "a folder inside class folder \"\(name)\"; expected image files only")
                    }
                    out.append((path, index[name]!))
                }
            }
            return out
        }
        let trainFiles: [(path: String, label: Int32)], testFiles: [(path: String, label: Int32)]
        switch layout {
        case .split:
            let testFolder = DatasetFolder.join(folder, "test")
            guard isDirectory(testFolder) else { throw DataError.missingSplit(folder: folder, split: "test") }
            trainFiles = try files(in: DatasetFolder.join(folder, "train"))
            testFiles = try files(in: testFolder)
        case .classes:
            (trainFiles, testFiles) = split(try files(in: folder), domain: domain, options: options)
        }
        return DomainData(name: domain,
                          train: try decode(trainFiles, domain: domain, classCount: classes.count, shape: shape),
                          test: try decode(testFiles, domain: domain, classCount: classes.count, shape: shape),
                          classNames: classes)
    }

    /// A seeded stratified split: of each class, round(testSplit × n) images go to
    /// test (at least one image stays in train); both keep the files' order.
    static func split(_ files: [(path: String, label: Int32)], domain: String,
                      options: ImageFolderOptions) -> (train: [(path: String, label: Int32)], test: [(path: String, label: Int32)]) {
        var byClass: [Int32: [Int]] = [:]
        for (i, f) in files.enumerated() { byClass[f.label, default: []].append(i) }
        var isTest = [Bool](repeating: false, count: files.count)
        for label in byClass.keys.sorted() {
            var members = byClass[label]!
            let n = members.count
            let take = min(max(0, n - 1), Int((options.testSplit * Double(n)).rounded()))
            var rng = SeededGenerator(seed: mixSeed(options.seed, stableHash(domain), UInt64(label), 0x5E1_17))
            rng.shuffle(&members)
            for i in members.prefix(take) { isTest[i] = true }
        }
        let indices = Array(files.indices)
        return (indices.filter { !isTest[$0] }.map { files[$0] }, indices.filter { isTest[$0] }.map { files[$0] })
    }

    /// Decodes `files` (both cores), resizes each to `shape` as Pillow's antialiased
    /// bilinear does, and keeps the bytes. The first failing file, in order, is reported.
    static func decode(_ files: [(path: String, label: Int32)], domain: String, classCount: Int,
                       shape: ImageShape) throws -> Dataset {
        let size = 3 * shape.height * shape.width
        var pixels = [UInt8](repeating: 0, count: files.count * size)
        let errors = ErrorSlots(count: files.count)
        let workers = max(1, min(ProcessInfo.processInfo.activeProcessorCount, files.count))
        pixels.withUnsafeMutableBufferPointer { out in
            let base = UnsafeSendablePointer(out.baseAddress)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                var i = w
                while i < files.count {
                    do {
                        var image = try ImageFile.decode(path: files[i].path)
                        if image.width != shape.width || image.height != shape.height {
                            image = resizeAntialiased(image, width: shape.width, height: shape.height)
                        }
                        let planes = image.planarRGB()
                        planes.withUnsafeBufferPointer { base.pointer!.advanced(by: i * size).update(from: $0.baseAddress!, count: size) }
                    } catch {
                        errors.set(i, error)
                    }
                    i += workers
                }
            }
        }
        if let first = errors.first() { throw first }
        let data = Dataset(domain: domain, channels: 3, height: shape.height, width: shape.width,
                           pixels: pixels, labels: files.map(\.label), classCount: classCount)
        guard shape.channels != 3 else { return data }
        let (px, s) = conform(data.pixels, count: data.count, channels: 3, height: shape.height, width: shape.width, to: shape)
        return Dataset(domain: domain, channels: s.channels, height: s.height, width: s.width,
                       pixels: px, labels: data.labels, classCount: classCount)
    }

    static func isDirectory(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && dir.boolValue
    }

    /// Names in `folder` that do not start with a dot, sorted.
    static func visibleEntries(_ folder: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { !$0.hasPrefix(".") }.sorted()
    }

    static func subfolders(_ folder: String) -> [String] {
        visibleEntries(folder).filter { isDirectory(DatasetFolder.join(folder, $0)) }
    }
}

/// A pointer the decoding workers share; each writes only its own images.
struct UnsafeSendablePointer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<UInt8>?
    init(_ pointer: UnsafeMutablePointer<UInt8>?) { self.pointer = pointer }
}

/// One error slot per file, filled by the decoding workers.
final class ErrorSlots: @unchecked Sendable {
    private var errors: [Error?]
    private let lock = NSLock()
    init(count: Int) { errors = [Error?](repeating: nil, count: count) }
    func set(_ i: Int, _ error: Error) { lock.lock(); errors[i] = error; lock.unlock() }
    func first() -> Error? { lock.lock(); defer { lock.unlock() }; return errors.lazy.compactMap { $0 }.first }
}
