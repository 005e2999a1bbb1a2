import ArgumentParser
import Data
import FedKitCLI
import Federated
import Foundation
import NN

/// `fed-sim`: a whole federation as real processes on this machine, and who won.
@main
struct FedSim: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fed-sim",
        abstract: "Run a federation locally (one fed-server and one fed-client process per client, mutual TLS on loopback) and report per-domain accuracy.",
        subcommands: [Run.self, Compare.self, Export.self, ExportData.self])
}

/// Named starting points; every value can be overridden by a flag.
enum Preset: String, ExpressibleByArgument, CaseIterable {
    /// The FedBN/FedWon Digits-Five protocol: 5 clients (one per domain), 743 training images each, batch 32, lr 0.01, 1 epoch, 100 rounds, the full digit model.
    case digits5
    /// Small enough for about a minute per strategy here: a narrower digit model, 400 images per client, 12 rounds.
    case digits5Quick = "digits5-quick"

    var rounds: Int { self == .digits5 ? 100 : 12 }
    var trainCount: Int { self == .digits5 ? Digits5.protocolTrainCount : 4000 }
    var testCount: Int { self == .digits5 ? Digits5.protocolTestCount : 500 }
    var widths: [Int]? { self == .digits5 ? nil : [32, 32, 64, 256, 128] }
    var learningRate: Float { self == .digits5 ? 0.01 : 0.1 }
}

struct SimOptions: ParsableArguments {
    @Option(help: "Preset: digits5 (the papers' protocol) or digits5-quick.") var preset: Preset = .digits5Quick
    @Option(help: "Output directory (metrics, logs, summary.json, report.html).") var out: String = "fed-sim-out"
    @Option(help: "Rounds (default: the preset's).") var rounds: Int?
    @Option(help: "Comma-separated domains (default: mnist,svhn,usps,synth,mnistm, or every folder of --data).") var domains: String?
    @Option(help: "A multi-domain dataset folder (one sub-folder per domain with train and test files); default: the built-in digits5.") var data: String?
    @Option(help: "Partition: domain (one client per domain) or domain:K (K clients per domain).") var partition: String = "domain"
    @Option(help: "Fraction of each domain's training split used (FedBN: 0.1).") var dataFraction: Double = 0.1
    @Option(help: "digits5: training images generated per domain (before --data-fraction).") var trainCount: Int?
    @Option(help: "digits5: test images per domain; --data: at most this many of each domain's test images, the first (default: all of them).") var testCount: Int?
    @Option(help: "--data as image folders DOMAIN/CLASS/* (no train/ and test/): the share of each class held out for test (default 0.2).") var testSplit: Double?
    @Option(help: "Random transforms of training samples in every client: none, flip, rotate:D, or flip,rotate:30 (FedBN's Office/DomainNet transform); never at evaluation.") var augment: String = "none"
    @Option(help: "Local batch size.") var batch: Int = 32
    @Option(help: "Local learning rate (default: the preset's).") var lr: Float?
    @Option(help: "Learning-rate decay per round (fed-server --lr-decay): round r trains at lr × this^(r−1); default 1, constant.") var lrDecay: Double?
    @Option(help: "Local epochs per round.") var epochs: Int = 1
    @Option(help: "AGC λ for fedwon (default 0.32, from the sweep in docs/sweep.md).") var agcLambda: Float?
    @Option(help: "FedProx μ (default 0.01).") var fedproxMu: Float?
    @Option(help: "Model architecture.") var model: Architecture = .digitCNN
    @Option(help: "Comma-separated widths (default: the preset's).") var widths: String?
    @Option(help: "Height and width of the model's input; every client's images are brought to it (default: the model's own: digit-cnn 28, alexnet 64 (at least 64), resnet8/resnet20 32).") var inputSize: Int?
    @Option(help: "Norm for fedavg and fedprox (fedbn uses batch, fedwon none).") var norm: Norm = .batch
    @Option(help: "Fraction of clients sampled per round.") var fraction: Double = 1
    @Option(help: "Seed of data, sampling and shuffling.") var seed: UInt64 = 1
    @Option(help: "Comma-separated seeds, e.g. 1,2,3: every strategy runs once per seed (each run in OUT/seed-N, with its own report), and the table, summary.json and report.html give the mean and standard deviation over the seeds. Replaces --seed.") var seeds: String?
    @Option(help: "BLAS threads per child process.") var threads: Int = 1
    @Option(help: "Logical clients per fed-client process (one model in memory at a time per process); for many clients, e.g. --partition domain:20 --clients-per-process 10.") var clientsPerProcess: Int = 1
    @Option(help: "Seconds a round waits for its clients.") var roundTimeout: Double = 600
    @Option(help: "Client updates the server receives at once (fed-server --max-concurrent-receives; 0: no bound); default: fed-server's, as many as fit in 1 GiB.") var maxConcurrentReceives: Int?
    @Option(help: "The server's running sums (fed-server --aggregation-precision): float64 or float32.") var aggregationPrecision: AggregationPrecision = .float64
    @Option(help: "Norm clipping at the server (fed-server --max-update-norm): the largest distance from the global model a client's update counts with; default: none.") var maxUpdateNorm: Double?

    func validate() throws {
        if let r = rounds, r < 1 { throw ValidationError("--rounds (\(r)) must be at least 1") }
        if let t = testSplit, !(t >= 0 && t < 1) { throw ValidationError("--test-split (\(t)) must be in [0, 1)") }
        guard batch >= 1 else { throw ValidationError("--batch (\(batch)) must be at least 1") }
        guard dataFraction > 0 && dataFraction <= 1 else { throw ValidationError("--data-fraction (\(dataFraction)) must be in (0, 1]") }
        guard threads >= 1 else { throw ValidationError("--threads (\(threads)) must be at least 1") }
        if let r = maxConcurrentReceives, r < 0 { throw ValidationError("--max-concurrent-receives (\(r)) must be 0 (no bound) or more") }
        if let b = maxUpdateNorm, !(b.isFinite && b > 0) { throw ValidationError("--max-update-norm (\(b)) must be a positive number") }
        if let d = lrDecay, !(d > 0 && d <= 1) { throw ValidationError("--lr-decay (\(d)) must be in (0, 1]") }
        guard clientsPerProcess >= 1 else { throw ValidationError("--clients-per-process (\(clientsPerProcess)) must be at least 1") }
        // Checked here too, not only by the daemons: a bad value would otherwise show only as
        // a server that did not start.
        guard fraction > 0 && fraction <= 1 else { throw ValidationError("--fraction (\(fraction)) must be in (0, 1]") }
        guard roundTimeout > 0 && roundTimeout.isFinite else { throw ValidationError("--round-timeout (\(roundTimeout)) must be a positive number of seconds") }
        if let lr, !(lr > 0 && lr.isFinite) { throw ValidationError("--lr (\(lr)) must be a positive number") }
        _ = try parsedWidths()
        if let s = inputSize, s < 1 || (model == .alexnet && s < 64) {
            throw ValidationError("--input-size (\(s)) must be at least \(model == .alexnet ? 64 : 1) for --model \(model.rawValue)")
        }
        _ = try clientsPerDomain()
        _ = try seedList()
        do { _ = try Augmentation(parsing: augment) } catch { throw ValidationError("--augment \(error)") }
    }

    /// --widths as integers: as many as --model has layers, each positive; nil when not given.
    func parsedWidths() throws -> [Int]? {
        guard let text = widths else { return nil }
        let v = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0.trimmingCharacters(in: .whitespaces)) }
        let expected = ModelSpec.defaultWidths(model).count
        guard v.count == expected, v.allSatisfy({ ($0 ?? 0) > 0 }) else {
            throw ValidationError("--widths (\(text)) must be \(expected) comma-separated positive integers for --model \(model.rawValue)")
        }
        return v.map { $0! }
    }

    /// The seeds to run: --seeds, or --seed alone.
    func seedList() throws -> [UInt64] {
        guard let text = seeds else { return [seed] }
        let list = text.split(separator: ",").map { UInt64($0.trimmingCharacters(in: .whitespaces)) }
        guard !list.isEmpty, list.allSatisfy({ $0 != nil }) else { throw ValidationError("--seeds (\(text)) must be comma-separated non-negative integers, e.g. 1,2,3") }
        let values = list.map { $0! }
        guard Set(values).count == values.count else { throw ValidationError("--seeds (\(text)) names a seed twice") }
        return values
    }

    func clientsPerDomain() throws -> Int {
        if partition == "domain" { return 1 }
        if partition.hasPrefix("domain:"), let k = Int(partition.dropFirst(7)), k >= 1 { return k }
        throw ValidationError("--partition (\(partition)) must be domain or domain:K with K ≥ 1")
    }

    func domainList() throws -> [String] {
        if let d = domains { return d.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let folder = data {
            do { return try DatasetFolder.domainNames(root: folder) } catch { throw ValidationError("--data: \(error)") }
        }
        return Digits5.Domain.allCases.map(\.rawValue)
    }

    func plan(_ strategy: StrategyKind) throws -> SimulationPlan {
        let w = try parsedWidths() ?? (model == .digitCNN ? preset.widths : nil)
        let n: Norm = strategy == .fedwon ? .none : strategy == .fedbn ? .batch : norm
        var t = TrainingSettings()
        t.batchSize = batch; t.learningRate = lr ?? preset.learningRate; t.epochs = epochs; t.seed = seed
        if strategy == .fedwon { t.agcLambda = agcLambda ?? 0.32 }
        if strategy == .fedprox { t.proximalMu = fedproxMu ?? 0.01 }
        var p = SimulationPlan(strategy: strategy, model: ModelSpec(architecture: model, norm: n, inputSize: inputSize, widths: w, groups: 32, seed: seed),
                               rounds: rounds ?? preset.rounds, training: t, domains: try domainList())
        p.dataFolder = data
        p.clientsPerDomain = try clientsPerDomain()
        p.dataFraction = dataFraction
        p.trainCount = trainCount ?? preset.trainCount
        p.testCount = testCount ?? preset.testCount
        if data != nil { p.folderTestLimit = testCount; p.testSplit = testSplit }
        p.dataSeed = seed
        p.fraction = fraction
        p.threadsPerProcess = threads
        p.clientsPerProcess = clientsPerProcess
        p.roundTimeout = roundTimeout
        p.maxConcurrentReceives = maxConcurrentReceives
        p.aggregationPrecision = aggregationPrecision
        p.maxUpdateNorm = maxUpdateNorm
        p.learningRateDecay = lrDecay
        p.augment = augment == "none" ? nil : augment
        return p
    }

    var configuration: [String: String] {
        ["preset": preset.rawValue, "batch": String(batch), "lr": String(lr ?? preset.learningRate), "epochs": String(epochs),
         "rounds": String(rounds ?? preset.rounds), "partition": partition, "data": data ?? "digits5 (built-in)",
         "data_fraction": String(dataFraction), "seed": String(seed), "model": model.rawValue,
         "input_size": String(inputSize ?? ModelSpec.defaultInputSize(model)),
         "widths": widths ?? preset.widths.map { $0.map(String.init).joined(separator: ",") } ?? "standard",
         "agc_lambda (fedwon)": String(agcLambda ?? 0.32), "threads_per_process": String(threads),
         "augment": augment, "max_update_norm": maxUpdateNorm.map { String($0) } ?? "none", "lr_decay": lrDecay.map { String($0) } ?? "1"]
    }

    /// Runs `strategies` for every seed; with several seeds, also writes the summary, table and
    /// report of their mean and standard deviation into `out`.
    func simulate(_ strategies: [StrategyKind]) throws {
        let list = try seedList()
        guard list.count > 1 else {
            var one = self
            one.seed = list[0]
            _ = try one.simulateSeed(strategies)
            return
        }
        var runs: [SimulationReport.SeedRun] = []
        var skipped: [String: String] = [:]
        for s in list {
            Console.line("seed \(s):")
            var one = self
            one.seed = s
            one.seeds = nil
            one.out = "\(out)/seed-\(s)"
            let (results, skips) = try one.simulateSeed(strategies)
            runs.append(.init(seed: s, results: results))
            skipped.merge(skips) { a, _ in a }
        }
        var config = configuration
        config["seed"] = list.map(String.init).joined(separator: ",")
        try AtomicWrite.write(SimulationReport.summaryJSON(seeds: runs, skipped: skipped, config: config), to: "\(out)/summary.json")
        try AtomicWrite.write(Data(SimulationReport.html(seeds: runs, skipped: skipped, config: config).utf8), to: "\(out)/report.html")
        Console.line("\nFinal test accuracy (last round), mean ± standard deviation over seeds \(config["seed"]!):\n" + SimulationReport.table(seeds: runs))
        Console.line("\nwrote \(out)/summary.json and \(out)/report.html (each seed's in \(out)/seed-N)")
    }

    /// Runs `strategies` one after another on identical data and seeds, then writes the summary and report.
    func simulateSeed(_ strategies: [StrategyKind]) throws -> (results: [SimulationResult], skipped: [String: String]) {
        let binaries = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
            .deletingLastPathComponent().path
        do { try AtomicFile.makeDirectory(out) } catch { throw ValidationError("--out: \(error)") }
        let certs = "\(out)/certs"
        let allClients = try plan(strategies[0]).clients.map(\.name)
        try EphemeralCertificates.write(to: certs, clients: allClients)
        var results: [SimulationResult] = []
        var skipped: [String: String] = [:]
        for s in strategies {
            let p = try plan(s)
            if p.training.batchSize == 1 && p.model.norm == .batch {
                let reason = "batch size 1 cannot train BatchNorm (batch statistics need at least 2 examples); FedWon's normalization-free model can"
                skipped[s.rawValue] = reason
                Console.line("\(s.rawValue): skipped — \(reason)")
                continue
            }
            // A model that cannot be built (an input too small for its layers, widths GroupNorm cannot
            // split) is refused here, naming the value, before any process starts.
            do { _ = try p.model.build() } catch { throw ValidationError("--model \(p.model.architecture.rawValue) at input 3×\(p.model.inputSize)×\(p.model.inputSize): \(error)") }
            Console.line("\(s.rawValue): \(p.clients.count) clients, \(p.model.architecture.rawValue)/\(p.model.norm.rawValue), \(p.rounds) rounds")
            let sim = Simulator(plan: p, directory: "\(out)/\(s.rawValue)", certificates: certs, binaries: binaries)
            let terminal = isatty(1) == 1
            let total = p.rounds
            sim.onProgress = { line in
                if terminal, line.hasPrefix("round "), let r = Int(line.dropFirst(6).prefix { $0.isNumber }) {
                    let filled = Int(Double(r) / Double(total) * 30)
                    Console.line("  [\(String(repeating: "#", count: filled))\(String(repeating: ".", count: 30 - filled))] \(line)")
                } else {
                    Console.line("  \(line)")
                }
            }
            SignalGuard.shared.current = sim
            let result = try sim.run()
            SignalGuard.shared.current = nil
            Console.line(String(format: "  peak memory: %.0f MB for all %d processes together, %.0f MB for the server", result.peakRSSMB,
                                p.clients.count / p.clientsPerProcess + 1, result.serverPeakRSSMB))
            results.append(result)
        }
        guard !results.isEmpty else { throw ValidationError("no strategy could run: \(skipped.map { "\($0.key): \($0.value)" }.joined(separator: "; "))") }
        let config = configuration
        try AtomicWrite.write(SimulationReport.summaryJSON(results, skipped: skipped, config: config), to: "\(out)/summary.json")
        var samples: [Dataset] = []
        if data == nil {
            samples = try domainList().compactMap { Digits5.Domain(rawValue: $0) }.map { Digits5.generate(domain: $0, count: 40, seed: seed, split: .test) }
        }
        try AtomicWrite.write(Data(SimulationReport.html(results, skipped: skipped, config: config, samples: samples).utf8), to: "\(out)/report.html")
        Console.line("\nFinal test accuracy (last round):\n" + SimulationReport.table(results))
        Console.line("\nwrote \(out)/summary.json and \(out)/report.html")
        return (results, skipped)
    }
}

enum AtomicWrite {
    static func write(_ data: Data, to path: String) throws { try AtomicFile.write(data, to: path) }
}

/// Stops every child process on Ctrl-C or SIGTERM, so no process outlives fed-sim.
final class SignalGuard: @unchecked Sendable {
    static let shared = SignalGuard()
    private let lock = NSLock()
    private var _current: Simulator?
    private var sources: [DispatchSourceSignal] = []
    var current: Simulator? {
        get { lock.lock(); defer { lock.unlock() }; return _current }
        set { lock.lock(); _current = newValue; lock.unlock() }
    }

    func install() {
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in
                self?.current?.terminateAll()
                FileHandle.standardError.write(Data("\nfed-sim: interrupted; every child process was stopped\n".utf8))
                exit(130)
            }
            s.resume()
            sources.append(s)
        }
    }
}

extension FedSim {
    struct Run: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run one strategy.")
        @Option(help: "Strategy: fedavg, fedbn, fedwon or fedprox.") var strategy: StrategyKind = .fedwon
        @OptionGroup var options: SimOptions
        func run() throws {
            SignalGuard.shared.install()
            // A SimulationError is printed as its reason alone (the processes' own words), without the usage line.
            try options.simulate([strategy])
        }
    }

    struct Compare: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Run several strategies on identical data and seeds and compare them per domain.")
        @Option(help: "Comma-separated strategies.") var strategies: String = "fedavg,fedbn,fedwon"
        @OptionGroup var options: SimOptions
        func run() throws {
            let kinds = try strategies.split(separator: ",").map { name -> StrategyKind in
                guard let k = StrategyKind(rawValue: String(name)) else {
                    throw ValidationError("--strategies: unknown strategy \(name); expected \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                return k
            }
            SignalGuard.shared.install()
            try options.simulate(kinds)
        }
    }
}

extension FedSim {
    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a model's tensors as .npz or .safetensors for another framework.",
            discussion: "MODEL is a FedKit archive: a run's final-model.fkt or checkpoint.fkt, or a client's state.fkt (for FedBN, a client's state holds its own trained BatchNorm layers; the server's model has none). Names are the state dictionary's (conv1.weight, bn1.running_mean, …), as in the FedBN reference's PyTorch model.")
        @Argument(help: "The FedKit archive to read.") var model: String
        @Argument(help: "The file to write: NAME.npz or NAME.safetensors.") var out: String
        func run() throws {
            let s: ModelExport.Summary
            do { s = try ModelExport.export(model, to: out) } catch { throw ValidationError("\(error)") }
            let what = s.model.map { " of \($0.architecture.rawValue)/\($0.norm.rawValue)" } ?? ""
            let when = s.round.map { " after round \($0)" } ?? ""
            print("wrote \(out): \(s.tensors) tensors, \(s.values) values\(what)\(when)")
        }
    }
}
