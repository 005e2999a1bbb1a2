import ArgumentParser
import Federated
import Foundation
import Logging
import NIOCore
import NN
import Tensor
import Transport
import Wire

/// `fed-client`: a client daemon; its data never leaves it.
public struct ClientCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "fed-client",
        abstract: "Join a federation: train and evaluate on local data when the server asks.",
        discussion: "Every option can also be set in a TOML file given with --config; flags override the file.")

    @Option(help: "TOML configuration file.") var config: String?
    @Option(help: "The server, HOST:PORT.") var server: String?
    @Option(help: "Name the server's certificate must carry (default: the host of --server).") var serverName: String?
    @Option(help: "This client's name: its certificate's common name, which the server checks it against (the default; another name is refused).") var name: String?
    @Option(help: "Directory for local state (FedBN's BatchNorm tensors survive restarts here).") var stateDir: String?
    @Option(help: "Strategy the federation runs (decides the default --norm).") var strategy: StrategyKind?
    @Option(help: "Give up after this many failed connection attempts in a row (default: never).") var maxAttempts: Int?
    @Option(help: "Host several logical clients in this process: comma-separated names DOMAIN-i (each with its own certificate in --cert-dir, connection, data shard i of --shards, and state directory under --state-dir; only one model is in memory at a time). --data then names the source only: digits5 or a dataset folder.") var clients: String?
    @Option(help: "With --clients: directory holding NAME.crt and NAME.key of every hosted client.") var certDir: String?
    @Option(help: "With --clients: how many clients split each domain (client DOMAIN-i trains on shard i).") var shards: Int?
    @Flag(help: "Check the configuration file, the settings, the credentials and the data, print what was found, and exit without connecting or writing anything.") var check = false
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var tls: TLSOptions
    @OptionGroup var logging: LoggingOptions
    @OptionGroup var status: StatusOptions

    public init() {}

    public func run() async throws {
        let file = try ConfigFile.load(config)
        var logger = logging.bootstrap("fed-client")
        let kind = StrategyKind(rawValue: try file.resolve(strategy?.rawValue, "strategy", StrategyKind.fedavg.rawValue)) ?? .fedavg
        guard let address = try file.resolve(server, "server"), let colon = address.lastIndex(of: ":"),
              let port = Int(address[address.index(after: colon)...]) else {
            throw ValidationError("--server is required as HOST:PORT, e.g. --server 10.0.0.5:7443")
        }
        guard (1...65535).contains(port) else { throw ValidationError("--server (\(address)): port \(port) must be 1...65535") }
        let attempts = try file.resolve(maxAttempts, "max-attempts")
        if let n = attempts, n < 1 {
            throw ValidationError("--max-attempts (\(n)) must be at least 1 (leave it out to retry for ever)")
        }
        let givenName = try file.resolve(name, "name")
        if let n = givenName, n.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--name must not be empty (leave it out to use the certificate's common name)")
        }
        let host = String(address[..<colon])
        if let list = try file.resolve(clients, "clients") {
            try await hostMany(list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }, host: host, port: port,
                               strategy: kind, attempts: attempts, file: file, logger: logger)
            return
        }
        let (credentials, expires) = try tls.credentials(file, role: .client, logger: logger)
        if let given = givenName, let common = credentials.commonName, given != common {
            throw ValidationError("--name (\(given)) differs from the common name of its certificate (\(common)), which the server checks it against; leave --name out")
        }
        let clientName = givenName ?? credentials.commonName ?? "client"
        logger[metadataKey: "client"] = "\(clientName)"
        let spec = try model.spec(strategy: kind, file)
        let data = try dataOptions.load(file, shape: ModelOptions.inputShape(spec))
        try Self.checkClasses(data, spec)
        if check {
            _ = try status.resolve(file)
            Console.line("fed-client: usable; \(clientName) (\(data.domain): \(data.trainIndices.count) training and \(data.test.count) test examples at \(ModelOptions.inputShape(spec)), \(spec.architecture.rawValue)/\(spec.norm.rawValue)) would connect to \(address)")
            return
        }
        let learner = LocalLearner(model: try spec.build(), data: data, clientName: clientName)
        let runtime = try ClientRuntime(name: clientName, learner: learner, stateDirectory: try file.resolve(stateDir, "state-dir"), logger: logger)
        runtime.status.set(\.certificateExpires, to: expires.timeIntervalSince1970)
        // The status port stays open as long as the daemon runs.
        _ = try await startStatus([runtime], file)

        let clientConfig = try connectionConfiguration(runtime, credentials: credentials, file: file, logger: logger)
        let dialer = ReconnectingDialer(host: host, port: port, configuration: clientConfig, maximumAttempts: attempts)
        logger.info("\(data.domain): \(data.trainIndices.count) training and \(data.test.count) test examples; OpenBLAS \(BLAS.coreName) kernels, \(BLAS.threads) thread(s); connecting to \(address)")
        while true {
            let connection = try await dialer.connect()
            logger.info("connected to \(address)")
            switch try await runtime.serve(connection) {
            case .finished(let reason):
                logger.info("federation finished: \(reason)")
                return
            case .disconnected:
                logger.warning("disconnected from \(address); reconnecting")
            }
        }
    }

    /// Serves several logical clients from this process, one model in memory at a time.
    func hostMany(_ names: [String], host: String, port: Int, strategy: StrategyKind, attempts: Int?, file: ConfigFile, logger: Logger) async throws {
        guard let dir = try file.resolve(certDir, "cert-dir"), let ca = try file.resolve(tls.ca, "ca") else {
            throw ValidationError("--clients needs --cert-dir (NAME.crt and NAME.key per client) and --ca")
        }
        guard let root = try file.resolve(stateDir, "state-dir") else {
            throw ValidationError("--clients needs --state-dir: hosted clients keep their models on disk between requests")
        }
        guard let source = try file.resolve(dataOptions.data, "data") else {
            throw ValidationError("--clients needs --data SOURCE (digits5 or a dataset folder)")
        }
        let k = try file.resolve(shards, "shards", 1)
        guard k >= 1 else { throw ValidationError("--shards (\(k)) must be at least 1") }
        let spec = try model.spec(strategy: strategy, file)
        let gate = ModelGate()
        var runtimes: [(ClientRuntime, ClientConfiguration)] = []
        for name in names {
            guard let dash = name.lastIndex(of: "-"), let shard = Int(name[name.index(after: dash)...]), shard >= 0, shard < k else {
                throw ValidationError("--clients: \(name) is not DOMAIN-i with 0 ≤ i < --shards (\(k))")
            }
            var d = dataOptions
            d.data = "\(source):\(name[..<dash])"
            d.partition = "\(shard)/\(k)"
            var clientLogger = logger
            clientLogger[metadataKey: "client"] = "\(name)"
            let (creds, expires) = try TLSOptions.load(cert: "\(dir)/\(name).crt", key: "\(dir)/\(name).key", ca: ca, role: .client, logger: clientLogger)
            let data = try d.load(file, shape: ModelOptions.inputShape(spec))
            try Self.checkClasses(data, spec)
            if check {
                Console.line("fed-client: usable; \(name) (\(data.domain) shard \(shard)/\(k): \(data.trainIndices.count) training and \(data.test.count) test examples) would connect to \(host):\(port)")
                continue
            }
            let runtime = try ClientRuntime(name: name, spec: spec, data: data, stateDirectory: "\(root)/\(name)", logger: clientLogger)
            runtime.status.set(\.certificateExpires, to: expires.timeIntervalSince1970)
            runtimes.append((runtime, try connectionConfiguration(runtime, credentials: creds, file: file, logger: clientLogger)))
        }
        if check {
            _ = try status.resolve(file)
            return
        }
        _ = try await startStatus(runtimes.map(\.0), file)
        logger.info("hosting \(names.count) clients; connecting to \(host):\(port)")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (runtime, config) in runtimes {
                group.addTask {
                    let dialer = ReconnectingDialer(host: host, port: port, configuration: config, maximumAttempts: attempts)
                    while true {
                        let connection = try await dialer.connect()
                        if case .finished = try await runtime.serve(connection, gate: gate) { return }
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Refuses data whose labels the model cannot output (more classes than `--classes`), naming both.
    static func checkClasses(_ data: LocalData, _ spec: ModelSpec) throws {
        let classes = max(data.train.classCount, data.test.classCount)
        guard classes <= spec.classes else {
            throw ValidationError("the data of \(data.domain) has \(classes) classes but the model (\(spec.architecture.rawValue), --classes \(spec.classes)) outputs \(spec.classes); set --classes \(classes)")
        }
    }

    /// The status endpoint over `runtimes`, when `--status-port` asks for one.
    func startStatus(_ runtimes: [ClientRuntime], _ file: ConfigFile) async throws -> StatusEndpoint? {
        guard let address = try status.resolve(file) else { return nil }
        return try await StatusOptions.start(address, daemon: "fed-client", routes: StatusPage.routes(runtimes.map(\.status)))
    }

    /// The Hello and TLS settings of one client's connection. Chunked models are checked with
    /// CRC-32C when the server agrees (TLS already authenticates every byte), and updates are
    /// sent in the streamed order when it agrees, so that it folds them as they arrive.
    func connectionConfiguration(_ runtime: ClientRuntime, credentials: Credentials, file: ConfigFile, logger: Logger) throws -> ClientConfiguration {
        var hello = Fedkit_V1_Hello()
        hello.clientName = runtime.name
        hello.protocolVersion = WireProtocol.currentVersion
        hello.capabilities = WireProtocol.capabilities + [WireProtocol.crc32cCapability, WireProtocol.streamedPayloadCapability]
        hello.dataset = runtime.datasetSummary
        var config = ClientConfiguration.mutualTLS(credentials: credentials, hello: hello)
        config.serverHostname = try file.resolve(serverName, "server-name")
        config.logger = logger
        return config
    }
}
