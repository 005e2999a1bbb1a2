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

    @Option(help: "Also print the partition summary of the generated domains for this spec (domain, domain:K, dirichlet:ALPHA, iid).")
    var partition: String?

    @Option(help: "Clients per domain for --partition iid and dirichlet.")
    var clientsPerDomain = 1

    @Option(help: "Share of each domain's training images used by --partition, in (0, 1].")
    var fraction = 1.0

    func validate() throws {
        if let partition {
            do { _ = try PartitionSpec(parsing: partition) } catch { throw ValidationError("--partition: \(error)") }
        }
        guard fraction > 0 && fraction <= 1 else { throw ValidationError("--fraction (\(fraction)) must be in (0, 1]") }
        guard clientsPerDomain >= 1 else { throw ValidationError("--clients-per-domain (\(clientsPerDomain)) must be at least 1") }
        guard count >= 10 else { throw ValidationError("--count (\(count)) must be at least 10") }
        guard idxCount >= 10 else { throw ValidationError("--idx-count (\(idxCount)) must be at least 10") }
    }

    /// Wall-clock and this thread's CPU seconds of `body` (the machine may be shared:
    /// CPU time is the single-thread cost, wall time what a user waits).
    func measure<T>(_ name: String, _ results: inout [(String, Double, Double)], _ body: () throws -> T) rethrows -> T {
        let wall = Date(), cpu = threadCPUSeconds()
        let value = try body()
        results.append((name, Date().timeIntervalSince(wall), threadCPUSeconds() - cpu))
        return value
    }

    func threadCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
    }

    func run() async throws {
        var results: [(String, Double, Double)] = []
        var generated: [Dataset] = []
        for domain in Digits5.Domain.allCases {
            let ds = measure("generate_\(domain.rawValue)", &results) {
                Digits5.generate(domain: domain, count: count, seed: seed, split: .train)
            }
            generated.append(ds)
        }
        if let partition {
            let domains = generated.map { ds in
                DomainData(name: ds.domain, train: ds,
                           test: Digits5.generate(domain: Digits5.Domain(rawValue: ds.domain)!, count: max(10, count / 4),
                                                  seed: seed, split: .test))
            }
            let clients = try Partitioner.partition(domains, spec: try PartitionSpec(parsing: partition),
                                                    clientsPerDomain: clientsPerDomain, fraction: fraction, seed: seed)
            print(Partitioner.summary(clients, domains: domains))
            print()
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
        let loaded = try measure("idx_load_\(idxCount)", &results) {
            try IDX.load(images: images, labels: labels, domain: "mnist")
        }
        precondition(loaded.count == idxCount)

        if FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") || FileManager.default.isExecutableFile(atPath: "/bin/gzip") {
            let gzip = Process()
            gzip.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") ? "/usr/bin/gzip" : "/bin/gzip")
            gzip.arguments = ["-k", "-6", images]
            try gzip.run()
            gzip.waitUntilExit()
            if gzip.terminationStatus == 0 {
                _ = try measure("idx_gz_load_\(idxCount)", &results) {
                    try IDX.load(images: images + ".gz", labels: labels, domain: "mnist")
                }
            }
        }

        // One epoch of batches of 32, normalized.
        var iterator = BatchIterator(dataset: loaded, batchSize: 32, seed: seed)
        var batch = Batch()
        var seen = 0
        measure("batch_epoch_\(idxCount)_b32", &results) {
            while iterator.next(into: &batch) { seen += batch.count }
        }
        precondition(seen == idxCount)

        if json {
            let fields = results.map {
                "\"\($0.0)\": {\"wall_s\": \(String(format: "%.4f", $0.1)), \"cpu_s\": \(String(format: "%.4f", $0.2))}"
            }
            print("{\"bench\": \"data\", \"count\": \(count), \"idx_count\": \(idxCount), " + fields.joined(separator: ", ") + "}")
        } else {
            print("what".padding(toLength: 28, withPad: " ", startingAt: 0) + "    wall s     cpu s")
            for (name, wall, cpu) in results {
                print(name.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "%10.3f%10.3f", wall, cpu))
            }
            print("generate_*: \(count) images of one domain; idx_*: \(idxCount) grey 28×28 images loaded as 3×28×28")
        }
    }
}
