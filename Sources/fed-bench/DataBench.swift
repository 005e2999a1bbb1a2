import ArgumentParser
import Data
import Foundation

/// `fed-bench data`: how fast the Data module generates, loads and batches images.
struct DataBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Time digits5 generation, IDX loading and batch iteration.")

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: "Images generated per digits5 domain.")
    var count = 10_000

    @Option(help: "Images in the IDX file that is written and loaded.")
    var idxCount = 60_000

    @Option(help: "Seed of the generated data.")
    var seed: UInt64 = 1

    @Option(help: "Also write a PNG grid of samples of every domain to this path.")
    var sampleGrid: String?

    func validate() throws {
        guard count >= 10 else { throw ValidationError("--count (\(count)) must be at least 10") }
        guard idxCount >= 10 else { throw ValidationError("--idx-count (\(idxCount)) must be at least 10") }
    }

    func run() async throws {
        var results: [(String, Double)] = []
        var generated: [Dataset] = []
        for domain in Digits5.Domain.allCases {
            let start = Date()
            let ds = Digits5.generate(domain: domain, count: count, seed: seed, split: .train)
            results.append(("generate_\(domain.rawValue)_s", Date().timeIntervalSince(start)))
            generated.append(ds)
        }
        if let sampleGrid {
            try SampleGrid.writePNG(generated.map { $0.subset(Array(0..<min(100, $0.count))) }, to: sampleGrid, perClass: 3)
        }

        // A grey IDX file of MNIST-style digits, like MNIST's training set.
        let dir = NSTemporaryDirectory() + "fed-bench-data-\(ProcessInfo.processInfo.processIdentifier)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mnist = Digits5.generate(domain: .mnist, count: idxCount, seed: seed)
        var grey = [UInt8](repeating: 0, count: idxCount * 28 * 28)
        for i in 0..<idxCount { grey[(i * 784)..<((i + 1) * 784)] = mnist.pixels[(i * 3 * 784)..<(i * 3 * 784 + 784)] }
        let greyDataset = Dataset(domain: "mnist", channels: 1, height: 28, width: 28, pixels: grey,
                                  labels: mnist.labels, classCount: 10)
        let images = dir + "/train-images-idx3-ubyte", labels = dir + "/train-labels-idx1-ubyte"
        try IDX.write(greyDataset, images: images, labels: labels)
        var start = Date()
        let loaded = try IDX.load(images: images, labels: labels, domain: "mnist")
        results.append(("idx_load_\(idxCount)_s", Date().timeIntervalSince(start)))
        precondition(loaded.count == idxCount)

        if FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") || FileManager.default.isExecutableFile(atPath: "/bin/gzip") {
            let gzip = Process()
            gzip.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") ? "/usr/bin/gzip" : "/bin/gzip")
            gzip.arguments = ["-k", "-6", images]
            try gzip.run()
            gzip.waitUntilExit()
            if gzip.terminationStatus == 0 {
                start = Date()
                _ = try IDX.load(images: images + ".gz", labels: labels, domain: "mnist")
                results.append(("idx_gz_load_\(idxCount)_s", Date().timeIntervalSince(start)))
            }
        }

        // One epoch of batches of 32, normalized.
        var iterator = BatchIterator(dataset: loaded, batchSize: 32, seed: seed)
        var batch = Batch()
        start = Date()
        var seen = 0
        while iterator.next(into: &batch) { seen += batch.count }
        results.append(("batch_epoch_\(seen)_s", Date().timeIntervalSince(start)))

        if json {
            let fields = results.map { "\"\($0.0)\": \(String(format: "%.4f", $0.1))" }
            print("{\"bench\": \"data\", \"count\": \(count), \"idx_count\": \(idxCount), " + fields.joined(separator: ", ") + "}")
        } else {
            for (name, seconds) in results {
                print(name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%8.3f s", seconds))
            }
        }
    }
}
