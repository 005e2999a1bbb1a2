import ArgumentParser
import FedKitCLI
import Federated
import Foundation
import Logging
import NIOCore
import Transport
import Wire

/// `fed-client`: a client daemon; its data never leaves it.
@main
struct FedClient: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fed-client",
        abstract: "Join a federation: train and evaluate on local data when the server asks.",
        discussion: "Every option can also be set in a TOML file given with --config; flags override the file.")

    @Option(help: "TOML configuration file.") var config: String?
    @Option(help: "The server, HOST:PORT.") var server: String?
    @Option(help: "Name the server's certificate must carry (default: the host of --server).") var serverName: String?
    @Option(help: "This client's name (default: its certificate's common name, which is what the server uses).") var name: String?
    @Option(help: "Directory for local state (FedBN's BatchNorm tensors survive restarts here).") var stateDir: String?
    @Option(help: "Strategy the federation runs (decides the default --norm).") var strategy: StrategyKind?
    @Option(help: "Give up after this many failed connection attempts in a row (default: never).") var maxAttempts: Int?
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var model: ModelOptions
    @OptionGroup var tls: TLSOptions
    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        let file = try config.map { try ConfigFile(path: $0) } ?? ConfigFile()
        var logger = logging.bootstrap("fed-client")
        let kind = StrategyKind(rawValue: try file.resolve(strategy?.rawValue, "strategy", StrategyKind.fedavg.rawValue)) ?? .fedavg
        guard let address = try file.resolve(server, "server"), let colon = address.lastIndex(of: ":"),
              let port = Int(address[address.index(after: colon)...]) else {
            throw ValidationError("--server is required as HOST:PORT, e.g. --server 10.0.0.5:7443")
        }
        let host = String(address[..<colon])
        let credentials = try tls.credentials(file)
        let clientName = try file.resolve(name, "name") ?? credentials.commonName ?? "client"
        logger[metadataKey: "client"] = "\(clientName)"
        let spec = try model.spec(strategy: kind, file)
        let data = try dataOptions.load(file)
        let learner = LocalLearner(model: try spec.build(), data: data, clientName: clientName)
        let runtime = try ClientRuntime(name: clientName, learner: learner, stateDirectory: try file.resolve(stateDir, "state-dir"), logger: logger)

        var hello = Fedkit_V1_Hello()
        hello.clientName = clientName
        hello.protocolVersion = WireProtocol.currentVersion
        hello.capabilities = WireProtocol.capabilities + [WireProtocol.crc32cCapability]
        hello.dataset = runtime.datasetSummary
        var clientConfig = ClientConfiguration.mutualTLS(credentials: credentials, hello: hello)
        clientConfig.serverHostname = try file.resolve(serverName, "server-name")
        clientConfig.logger = logger
        let dialer = ReconnectingDialer(host: host, port: port, configuration: clientConfig, maximumAttempts: try file.resolve(maxAttempts, "max-attempts"))
        logger.info("\(data.domain): \(data.trainIndices.count) training and \(data.test.count) test examples; connecting to \(address)")
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
}
