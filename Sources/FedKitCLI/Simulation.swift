import Data
import Federated
import Foundation
import NN

/// A whole federation on one machine as real processes: one `fed-server`, one
/// `fed-client` per client, over mutual TLS on 127.0.0.1.
public struct SimulationPlan: Sendable {
    public var strategy: StrategyKind
    public var model: ModelSpec
    public var rounds: Int
    public var training: TrainingSettings
    /// digits5 domains, or the domain folders of `dataFolder`.
    public var domains: [String]
    /// A user's multi-domain folder; nil for the built-in digits5.
    public var dataFolder: String?
    public var clientsPerDomain: Int = 1
    public var dataFraction: Double = 0.1
    public var trainCount: Int = Digits5.protocolTrainCount
    public var testCount: Int = Digits5.protocolTestCount
    /// With `dataFolder`: at most this many of each domain's test images, the first; nil for all.
    public var folderTestLimit: Int?
    /// With `dataFolder` in the image-folder class layout: the test share (`--test-split`); nil for the clients' default.
    public var testSplit: Double?
    /// The clients' `--augment`; nil for none.
    public var augment: String?
    public var dataSeed: UInt64 = 1
    public var fraction: Double = 1
    public var roundTimeout: Double = 600
    /// BLAS threads of each child process.
    public var threadsPerProcess: Int = 1
    /// Logical clients hosted by one fed-client process (1: a process per client).
    public var clientsPerProcess: Int = 1
    /// The server's bound on updates received at once (`--max-concurrent-receives`); nil for none.
    public var maxConcurrentReceives: Int?
    /// The server's running sums (`--aggregation-precision`).
    public var aggregationPrecision: AggregationPrecision = .float64
    /// The server's norm clipping (`--max-update-norm`); nil for none.
    public var maxUpdateNorm: Double?
    /// The server's learning-rate decay per round (fed-server --lr-decay); nil for constant.
    public var learningRateDecay: Double?

    public init(strategy: StrategyKind, model: ModelSpec, rounds: Int, training: TrainingSettings, domains: [String]) {
        self.strategy = strategy; self.model = model; self.rounds = rounds; self.training = training; self.domains = domains
    }

    /// Client names, `DOMAIN-k`.
    public var clients: [(name: String, domain: String, shard: Int)] {
        domains.flatMap { d in (0..<clientsPerDomain).map { ("\(d)-\($0)", d, $0) } }
    }
}

/// A client process that ended before the federation did.
public struct Dropout: Codable, Sendable, Equatable {
    public var client: String
    /// Seconds after the start of the run.
    public var atSeconds: Double
    /// Rounds the server had completed by then.
    public var afterRound: Int
    public var status: Int32
}

/// What one simulated run produced.
public struct SimulationResult: Sendable {
    public var plan: SimulationPlan
    public var metrics: [RoundMetrics]
    public var wallSeconds: Double
    public var dropouts: [Dropout]
    /// Largest resident memory of all processes together, and of the server alone, in MB
    /// (sampled twice a second).
    public var peakRSSMB: Double
    public var serverPeakRSSMB: Double

    /// Final test accuracy per domain (averaged over the domain's clients) from the last evaluated round.
    public var finalAccuracy: [String: Float] {
        guard let last = metrics.last(where: { !$0.evaluation.isEmpty }) else { return [:] }
        var sums: [String: (Float, Int)] = [:]
        for e in last.evaluation { sums[e.domain, default: (0, 0)].0 += e.accuracy; sums[e.domain, default: (0, 0)].1 += 1 }
        return sums.mapValues { $0.0 / Float($0.1) }
    }
}

/// Errors of a simulation, phrased for the user.
public struct SimulationError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// Starts, watches and stops the processes of one simulated federation.
public final class Simulator: @unchecked Sendable {
    public let plan: SimulationPlan
    /// Where the server's state, the clients' state and every log go.
    public let directory: String
    /// Directory holding ca.crt, server.crt/.key and NAME.crt/.key.
    public let certificates: String
    /// Directory holding the `fed-server` and `fed-client` executables.
    public let binaries: String
    /// Called with each progress line of the server ("round 3/10: …").
    public var onProgress: @Sendable (String) -> Void = { _ in }

    private let lock = NSLock()
    private var children: [String: Process] = [:]
    /// Log file of each child, by name.
    private var logs: [String: String] = [:]
    private var dropouts: [Dropout] = []
    private var completedRounds = 0
    private var finished = false
    private var start = Date()
    private var peakTotal = 0.0, peakServer = 0.0

    /// Samples the children's resident memory until the run finishes.
    private func sampleMemory() {
        while true {
            lock.lock()
            let done = finished
            let running = children.filter { $0.value.isRunning }.map { ($0.key, $0.value.processIdentifier) }
            lock.unlock()
            if done { return }
            var total = 0.0, server = 0.0
            for (name, pid) in running {
                let mb = ProcessMemory.currentRSS(pid: pid)
                total += mb
                if name == "server" { server = mb }
            }
            lock.lock(); peakTotal = max(peakTotal, total); peakServer = max(peakServer, server); lock.unlock()
            usleep(500_000)
        }
    }


    public init(plan: SimulationPlan, directory: String, certificates: String, binaries: String) {
        self.plan = plan; self.directory = directory; self.certificates = certificates; self.binaries = binaries
    }

    /// Process IDs of every running child (for a signal handler that must stop them).
    public var runningPIDs: [Int32] {
        lock.lock(); defer { lock.unlock() }
        return children.values.filter(\.isRunning).map(\.processIdentifier)
    }

    /// Stops every child (SIGTERM, then SIGKILL after two seconds).
    public func terminateAll() {
        let pids = runningPIDs
        for p in pids { kill(p, SIGTERM) }
        let deadline = Date().addingTimeInterval(2)
        while Date() < deadline && !runningPIDs.isEmpty { usleep(50_000) }
        for p in runningPIDs { kill(p, SIGKILL) }
    }

    /// The clients' arguments for a dataset folder: the test limit and image-folder split.
    func folderArguments() -> [String] {
        (plan.folderTestLimit.map { ["--test-count", String($0)] } ?? []) + (plan.testSplit.map { ["--test-split", String($0)] } ?? [])
    }

    func modelArguments() -> [String] {
        var a = ["--model", plan.model.architecture.rawValue, "--norm", plan.model.norm.rawValue,
                 "--groups", String(plan.model.groups), "--classes", String(plan.model.classes), "--model-seed", String(plan.model.seed),
                 "--input-size", String(plan.model.inputSize)]
        if let w = plan.model.widths { a += ["--widths", w.map(String.init).joined(separator: ",")] }
        return a
    }

    func tls(_ name: String) -> [String] {
        ["--cert", "\(certificates)/\(name).crt", "--key", "\(certificates)/\(name).key", "--ca", "\(certificates)/ca.crt"]
    }

    func launch(_ name: String, executable: String, arguments: [String], log: String, stdout: Pipe? = nil) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "\(binaries)/\(executable)")
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["OPENBLAS_NUM_THREADS"] = String(plan.threadsPerProcess)
        p.environment = env
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = handle
        p.standardOutput = stdout ?? handle
        p.standardInput = FileHandle.nullDevice
        p.terminationHandler = { [weak self] proc in self?.childEnded(name, proc) }
        lock.lock(); children[name] = p; logs[name] = log; lock.unlock()
        do { try p.run() } catch {
            throw SimulationError("cannot start \(binaries)/\(executable): \(error.localizedDescription) (build it with `swift build`)")
        }
        return p
    }

    private func childEnded(_ name: String, _ p: Process) {
        lock.lock(); defer { lock.unlock() }
        guard name != "server", !finished, p.terminationStatus != 0 || p.terminationReason == .uncaughtSignal else { return }
        dropouts.append(Dropout(client: name, atSeconds: Date().timeIntervalSince(start), afterRound: completedRounds, status: p.terminationStatus))
        let reason = lastError(logs[name]).map { ": \($0)" } ?? ""
        onProgress("client \(name) exited (status \(p.terminationStatus)) after round \(completedRounds)\(reason); the federation goes on without it")
    }

    /// The reason a child gave for failing: the last error line of its log (without the timestamp).
    func lastError(_ log: String?) -> String? {
        guard let log, let text = try? String(contentsOfFile: log, encoding: .utf8) else { return nil }
        let lines = text.split(separator: "\n").map(String.init)
        guard let line = lines.last(where: { $0.contains("Error:") || $0.contains(" ERROR ") || $0.contains(" CRITICAL ") }) else { return nil }
        if let r = line.range(of: "Error: ") { return String(line[r.upperBound...]) }
        return line.split(separator: " ", maxSplits: 3).dropFirst(3).first.map(String.init) ?? line
    }

    /// The last error each client logged, one line each, for a server that failed without them.
    func clientReasons() -> String {
        lock.lock(); let files = logs.filter { $0.key != "server" }; lock.unlock()
        let lines = files.sorted { $0.key < $1.key }.compactMap { name, log in lastError(log).map { "  \(name): \($0)" } }
        return lines.isEmpty ? "" : "\nerrors the clients logged:\n" + lines.joined(separator: "\n")
    }

    /// Runs the federation to its end.
    /// - Throws: `SimulationError` when the server fails; every child is stopped first.
    public func run() throws -> SimulationResult {
        start = Date()
        let fm = FileManager.default
        try? fm.removeItem(atPath: directory)
        try fm.createDirectory(atPath: "\(directory)/clients", withIntermediateDirectories: true)
        let clients = plan.clients
        let t = plan.training
        var serverArgs = ["--host", "127.0.0.1", "--port", "0", "--strategy", plan.strategy.rawValue, "--rounds", String(plan.rounds),
                          "--min-clients", String(clients.count), "--min-fit-clients", String(max(1, clients.count - max(1, clients.count / 5))),
                          "--fraction", String(plan.fraction), "--round-timeout", String(plan.roundTimeout),
                          "--epochs", String(t.epochs), "--batch-size", String(t.batchSize), "--lr", String(t.learningRate),
                          "--momentum", String(t.momentum), "--weight-decay", String(t.weightDecay), "--seed", String(t.seed),
                          "--state-dir", "\(directory)/server", "--threads", String(plan.threadsPerProcess)]
        if plan.clientsPerProcess > 1 {
            // A hosting process buffers every request it has received; one outstanding request per process bounds that.
            serverArgs += ["--max-in-flight", String((clients.count + plan.clientsPerProcess - 1) / plan.clientsPerProcess)]
        }
        if let receives = plan.maxConcurrentReceives { serverArgs += ["--max-concurrent-receives", String(receives)] }
        serverArgs += ["--aggregation-precision", plan.aggregationPrecision.rawValue]
        if let bound = plan.maxUpdateNorm { serverArgs += ["--max-update-norm", String(bound)] }
        if let decay = plan.learningRateDecay { serverArgs += ["--lr-decay", String(decay)] }
        if t.agcLambda > 0 { serverArgs += ["--agc-lambda", String(t.agcLambda)] }
        if t.proximalMu > 0 { serverArgs += ["--fedprox-mu", String(t.proximalMu)] }
        let out = Pipe()
        let server = try launch("server", executable: "fed-server", arguments: serverArgs + modelArguments() + tls("server"),
                                log: "\(directory)/server.log", stdout: out)
        let reader = LineReader(out.fileHandleForReading)
        defer { terminateAll() }
        // The first line names the port the server bound.
        guard let first = reader.next(), let port = first.split(separator: ":").last.map({ String($0) }), Int(port) != nil else {
            server.waitUntilExit()
            throw SimulationError("fed-server did not start; see \(directory)/server.log:\n" + tail("\(directory)/server.log"))
        }
        let perProcess = max(1, plan.clientsPerProcess)
        if perProcess == 1 {
            for c in clients {
                var args = ["--server", "127.0.0.1:\(port)", "--server-name", "localhost", "--strategy", plan.strategy.rawValue,
                            "--partition", "\(c.shard)/\(plan.clientsPerDomain)", "--data-fraction", String(plan.dataFraction),
                            "--data-seed", String(plan.dataSeed), "--state-dir", "\(directory)/clients/\(c.name)",
                            "--threads", String(plan.threadsPerProcess), "--max-attempts", "20"]
                if let folder = plan.dataFolder {
                    args += ["--data", "\(folder):\(c.domain)"] + folderArguments()
                } else {
                    args += ["--data", "digits5:\(c.domain)", "--train-count", String(plan.trainCount), "--test-count", String(plan.testCount)]
                }
                if let a = plan.augment { args += ["--augment", a] }
                _ = try launch(c.name, executable: "fed-client", arguments: args + modelArguments() + tls(c.name), log: "\(directory)/\(c.name).log")
            }
        } else {
            // Several logical clients per process, one model in memory at a time.
            for (j, start) in stride(from: 0, to: clients.count, by: perProcess).enumerated() {
                let group = clients[start..<min(start + perProcess, clients.count)].map(\.name)
                var args = ["--server", "127.0.0.1:\(port)", "--server-name", "localhost", "--strategy", plan.strategy.rawValue,
                            "--clients", group.joined(separator: ","), "--cert-dir", certificates, "--ca", "\(certificates)/ca.crt",
                            "--shards", String(plan.clientsPerDomain), "--data-fraction", String(plan.dataFraction),
                            "--data-seed", String(plan.dataSeed), "--state-dir", "\(directory)/clients",
                            "--threads", String(plan.threadsPerProcess), "--max-attempts", "20"]
                if let folder = plan.dataFolder {
                    args += ["--data", folder] + folderArguments()
                } else {
                    args += ["--data", "digits5", "--train-count", String(plan.trainCount), "--test-count", String(plan.testCount)]
                }
                if let a = plan.augment { args += ["--augment", a] }
                _ = try launch("host-\(j) (\(group.first!)…\(group.last!))", executable: "fed-client", arguments: args + modelArguments(),
                               log: "\(directory)/host-\(j).log")
            }
        }
        let sampler = Thread { [weak self] in self?.sampleMemory() }
        sampler.start()
        while let line = reader.next() {
            if line.hasPrefix("round ") {
                lock.lock(); completedRounds = Int(line.dropFirst(6).prefix { $0.isNumber }) ?? completedRounds; lock.unlock()
            }
            onProgress(line)
        }
        server.waitUntilExit()
        lock.lock(); finished = true; lock.unlock()
        guard server.terminationStatus == 0 else {
            throw SimulationError("fed-server failed (status \(server.terminationStatus)); see \(directory)/server.log:\n" + tail("\(directory)/server.log")
                                  + clientReasons())
        }
        // Clients leave after the server's Goodbye; give them a moment before stopping stragglers.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline && !runningPIDs.isEmpty { usleep(50_000) }
        let metricsText = (try? String(contentsOfFile: "\(directory)/server/metrics.jsonl", encoding: .utf8)) ?? ""
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let metrics = try metricsText.split(separator: "\n").map { try decoder.decode(RoundMetrics.self, from: Data($0.utf8)) }
        lock.lock(); defer { lock.unlock() }
        return SimulationResult(plan: plan, metrics: metrics, wallSeconds: Date().timeIntervalSince(start), dropouts: dropouts,
                                peakRSSMB: peakTotal, serverPeakRSSMB: peakServer)
    }

    func tail(_ path: String, lines: Int = 8) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").suffix(lines).joined(separator: "\n")
    }
}

/// Reads lines from a pipe, blocking.
final class LineReader {
    let handle: FileHandle
    var buffer = Data()
    init(_ h: FileHandle) { handle = h }

    func next() -> String? {
        while true {
            if let nl = buffer.firstIndex(of: 0x0A) {
                let line = String(decoding: buffer[buffer.startIndex..<nl], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...nl)
                return line
            }
            let chunk = handle.availableData
            if chunk.isEmpty {
                guard !buffer.isEmpty else { return nil }
                defer { buffer.removeAll() }
                return String(decoding: buffer, as: UTF8.self)
            }
            buffer.append(chunk)
        }
    }
}
