import ArgumentParser
import Federated
import Foundation
import Logging
import Transport
import Wire

/// `fed-server`: the coordinator daemon.
public struct ServerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fed-server",
        abstract: "Coordinate a federation: mutual TLS, rounds, aggregation, checkpoints.",
        discussion: "Every option can also be set in a TOML file given with --config (keys are the option names); flags override the file.")

    @Option(help: "TOML configuration file.") var config: String?
    @Option(help: "Address to listen on.") var host: String?
    @Option(help: "Port to listen on (0: any free port, printed at start).") var port: Int?
    @Option(help: "Comma-separated client names (certificate common names) allowed to join; default: any holder of a CA-signed certificate.") var allow: String?
    @Option(help: "Strategy: fedavg, fedbn, fedwon or fedprox.") var strategy: StrategyKind?
    @Option(help: "Rounds to run.") var rounds: Int?
    @Option(help: "Fraction of connected clients sampled each round.") var fraction: Double?
    @Option(help: "Clients needed to start a round and to aggregate it.") var minFitClients: Int?
    @Option(help: "Clients that must be connected before the first round (default: --min-fit-clients).") var minClients: Int?
    @Option(help: "Requests outstanding at once (sent, not yet answered); default: every sampled client at once. Bounds memory when processes host many clients.") var maxInFlight: Int?
    @Option(help: "Client updates received whole at once; others wait, unread, until one completes. Each costs one model of memory. FedKit's clients stream their updates, which are folded as they arrive and need no slot; this bounds the others, and all of them with --max-update-norm (default: as many as fit in 1 GiB, at least 1 — 18 of the digit model; 0: no bound).") var maxConcurrentReceives: Int?
    @Option(help: "The slowest pace, in MB/s, of an update being received. One not complete within 10 s plus its size over this rate is dropped and its client disconnected (it reconnects), so that clients that stall their uploads cannot keep the others waiting (default 0.1; no limit with --max-concurrent-receives 0).") var minReceiveRate: Double?
    @Option(help: "Running sums of the streaming average: float64 (default; the average does not depend on the order in which updates arrive, so runs reproduce bit for bit) or float32 (half the memory, a faster fold, last bits depend on arrival order).") var aggregationPrecision: AggregationPrecision?
    @Option(help: "Seconds a round waits for results before closing with those it has.") var roundTimeout: Double?
    @Option(help: "Attempts at a round that misses its quorum before the run stops (default 3).") var maxRoundAttempts: Int?
    @Option(help: "Seconds to wait after an attempt that missed its quorum, times the attempt number (default: a tenth of --round-timeout, at most 5).") var roundRetryBackoff: Double?
    @Option(help: "Seconds to wait for --min-fit-clients clients to connect.") var connectTimeout: Double?
    @Option(help: "Evaluate every N rounds (the last round always).") var evaluateEvery: Int?
    @Option(help: "Local epochs per round.") var epochs: Int?
    @Option(help: "Local batch size.") var batchSize: Int?
    @Option(help: "Local learning rate.") var lr: Float?
    @Option(help: "Learning-rate decay per round: round r trains at --lr × this^(r−1) (default 1, constant).") var lrDecay: Double?
    @Option(help: "Local SGD momentum.") var momentum: Float?
    @Option(help: "Local SGD weight decay.") var weightDecay: Float?
    @Option(help: "AGC λ for local training (fedwon default 0.32; 0 disables).") var agcLambda: Float?
    @Option(help: "FedProx μ (fedprox default 0.01).") var fedproxMu: Float?
    @Option(help: "Seed of client sampling and local shuffling.") var seed: UInt64?
    @Option(help: "Directory for the checkpoint, metrics.jsonl, timings.jsonl and final-model.fkt; a restart with the same directory resumes.") var stateDir: String?
    @Option(help: "Largest example count one client's update may claim (weights are also capped by the count it declared when joining).") var maxExamplesPerClient: Int?
    @Option(help: "Norm clipping: the largest L2 distance, over all shared tensors, a client's update counts with from the global model it was sent; a farther one counts as the global model plus its difference scaled to this length, so no client moves the model by more than its share of the examples times this bound (default: no bound).") var maxUpdateNorm: Double?
    @Option(help: "Keep the global model in the page cache while a round trains (an unnamed file in --state-dir, else the temporary directory), so the server holds the running sums and not the model too (default true; the model stays in memory anyway with --max-update-norm or on a tmpfs). false keeps it in memory, e.g. for a state directory on a slow network file system.") var modelInPageCache: Bool?
    @Flag(help: "Check the configuration file, the settings and the credentials, print the run they describe, and exit without listening or writing anything.") var check = false
    @OptionGroup var model: ModelOptions
    @OptionGroup var tls: TLSOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var status: StatusOptions

    public init() {}

    public func run() async throws {
        ProcessMemory.returnLargeBuffersToTheSystem()
        let file = try ConfigFile.load(config)
        let logger = logging.bootstrap("fed-server")
        if let raised = ProcessLimits.raiseOpenFileLimit() {  // one descriptor per client
            logger.debug("open-file limit raised from \(raised.before) to \(raised.after)")
        }
        let kind = try StrategyKind(rawValue: file.resolve(strategy?.rawValue, "strategy", StrategyKind.fedavg.rawValue))
        let listenPort = try file.resolve(port, "port", 7443)
        guard (0...65535).contains(listenPort) else { throw ValidationError("--port (\(listenPort)) must be 0...65535 (0: any free port)") }
        guard let kind else { throw ValidationError("--strategy must be one of \(StrategyKind.allCases.map(\.rawValue).joined(separator: ", "))") }
        var c = CoordinatorConfiguration(strategy: kind, model: try model.spec(strategy: kind, file), rounds: try file.resolve(rounds, "rounds", 100))
        c.fraction = try file.resolve(fraction, "fraction", 1.0)
        c.minFitClients = try file.resolve(minFitClients, "min-fit-clients", 1)
        c.minClients = try file.resolve(minClients, "min-clients")
        c.maxInFlight = try file.resolve(maxInFlight, "max-in-flight")
        let precision = try file.resolve(aggregationPrecision?.rawValue, "aggregation-precision", AggregationPrecision.float64.rawValue)
        guard let p = AggregationPrecision(rawValue: precision) else {
            throw ValidationError("--aggregation-precision (\(precision)) must be one of \(AggregationPrecision.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        c.aggregationPrecision = p
        c.modelInPageCache = try file.resolve(modelInPageCache, "model-in-page-cache", true)
        c.roundTimeout = try file.resolve(roundTimeout, "round-timeout", 600)
        c.maxRoundAttempts = try file.resolve(maxRoundAttempts, "max-round-attempts", 3)
        c.roundRetryBackoff = try file.resolve(roundRetryBackoff, "round-retry-backoff")
        c.connectTimeout = try file.resolve(connectTimeout, "connect-timeout", 600)
        c.evaluateEvery = try file.resolve(evaluateEvery, "evaluate-every", 1)
        c.training.epochs = try file.resolve(epochs, "epochs", 1)
        c.training.batchSize = try file.resolve(batchSize, "batch-size", 32)
        c.training.learningRate = try file.resolve(lr, "lr", 0.01)
        c.learningRateDecay = try file.resolve(lrDecay, "lr-decay", 1.0)
        c.training.momentum = try file.resolve(momentum, "momentum", 0)
        c.training.weightDecay = try file.resolve(weightDecay, "weight-decay", 0)
        c.training.agcLambda = try file.resolve(agcLambda, "agc-lambda", 0)
        c.training.proximalMu = try file.resolve(fedproxMu, "fedprox-mu", 0)
        c.seed = try file.resolve(seed, "seed", 1)
        c.training.seed = c.seed
        c.stateDirectory = try file.resolve(stateDir, "state-dir")
        c.maxExamplesPerClient = try file.resolve(maxExamplesPerClient, "max-examples-per-client", 1_000_000)
        c.maxUpdateNorm = try file.resolve(maxUpdateNorm, "max-update-norm")
        do { try c.validate() } catch { throw ValidationError("\(error)") }

        let (credentials, expires) = try tls.credentials(file, role: .server, logger: logger)
        var serverConfig = ServerConfiguration.mutualTLS(credentials: credentials)
        if let names = try file.resolve(allow, "allow") {
            serverConfig.allowedClients = Set(names.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        }
        serverConfig.logger = logger
        let receives = try file.resolve(maxConcurrentReceives, "max-concurrent-receives")
        if let receives, receives < 0 { throw ValidationError("--max-concurrent-receives (\(receives)) must be 0 (no bound) or more") }
        if let rate = try file.resolve(minReceiveRate, "min-receive-rate") {
            guard rate.isFinite, rate * 1e6 >= 1, rate <= 1e6 else {
                throw ValidationError("--min-receive-rate (\(rate)) must be a number of MB/s between 0.000001 and 1000000")
            }
            serverConfig.minimumReceiveRate = Int(rate * 1e6)
        }
        // Chunked models carry a CRC-32C (TLS already authenticates every byte; the checksum
        // guards reassembly), which keeps encoding and decoding above 1 GB/s.
        serverConfig.capabilities.append(WireProtocol.crc32cCapability)
        if check {
            _ = try status.resolve(file)
            let resume: UInt64?
            do { resume = try Coordinator.check(c) } catch { throw ValidationError("\(error)") }
            let start = resume.map { "resume after round \($0) from \(c.stateDirectory!)/checkpoint.fkt" } ?? "start at round 1"
            Console.line("fed-server: usable; would listen on \(try file.resolve(host, "host", "0.0.0.0")):\(listenPort), \(start), and run \(c.summary)")
            return
        }
        let totalRounds = c.rounds
        let terminal = isatty(1) == 1
        let coordinator = try Coordinator(configuration: c, logger: logger) { metrics, timing in
            let acc = metrics.meanAccuracy.map { String(format: "%.4f", $0) } ?? "-"
            let line = "round \(metrics.round)/\(totalRounds): \(metrics.fit.count)/\(metrics.selected.count) clients answered, mean test accuracy \(acc), \(String(format: "%.1f", timing.fitSeconds + timing.evaluateSeconds)) s"
            if terminal {
                let filled = Int(Double(metrics.round) / Double(totalRounds) * 30)
                Console.line("[\(String(repeating: "#", count: filled))\(String(repeating: ".", count: 30 - filled))] " + line)
            } else {
                Console.line(line)
            }
        }
        coordinator.status.set(\.certificateExpires, to: expires.timeIntervalSince1970)
        logger.info("\(c.summary)")
        // Updates in memory at once are bounded by default, so that clients answering together
        // cannot take the server's memory past a model-sized budget, however many they are.
        // Updates from FedKit clients are folded as they arrive (unless norm clipping is on).
        serverConfig.capabilities += coordinator.capabilities
        let bound = receives ?? ServerConfiguration.concurrentReceives(payloadBytes: coordinator.updateBytes)
        if bound > 0 { serverConfig.maximumConcurrentReceives = bound }
        let megabytes = String(format: "%.1f", Double(coordinator.updateBytes) / 1e6)
        let streaming = coordinator.capabilities.contains(WireProtocol.streamedPayloadCapability)
            ? "folding streamed updates of \(megabytes) MB as they arrive; other" : "receiving"
        let receiving = bound > 0 ? "\(streaming) updates: at most \(bound) at once (--max-concurrent-receives)"
                                  : "\(streaming) updates: no bound on how many at once"
        logger.info("\(receiving)")
        logger.info("\(coordinator.modelPlacement)")
        let statusAddress = try status.resolve(file)
        let bindHost = try file.resolve(host, "host", "0.0.0.0")
        let server = try await FederationServer.start(host: bindHost, port: listenPort, configuration: serverConfig)
        Console.line("fed-server: \(kind.rawValue) on \(c.model.architecture.rawValue)/\(c.model.norm.rawValue), listening on \(bindHost):\(server.port)")
        var statusEndpoint: StatusEndpoint?
        if let statusAddress {
            do {
                statusEndpoint = try await StatusOptions.start(statusAddress, daemon: "fed-server", routes: StatusPage.routes(coordinator.status))
            } catch {
                await server.close()
                throw error
            }
        }
        do {
            let metrics = try await coordinator.run(connections: server.connections)
            await server.close()
            await statusEndpoint?.close()
            if let last = metrics.last, let acc = last.meanAccuracy {
                Console.line("fed-server: finished \(metrics.count) rounds; final mean test accuracy \(String(format: "%.4f", acc))")
                for e in last.evaluation { Console.line("  \(e.client) (\(e.domain)): \(String(format: "%.4f", e.accuracy))") }
            }
        } catch {
            await server.close()
            await statusEndpoint?.close()
            logger.error("\(error)")
            throw ExitCode(1)
        }
    }
}
