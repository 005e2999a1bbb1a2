import Data
import FedKitCLI
import Foundation
import Logging
import NN
import Transport
import Wire
import XCTest
@testable import Federated

/// Log records kept in memory, to check what the coordinator said and about whom.
final class LogRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.lock(); lines.append(line); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return lines }

    var logger: Logger {
        Logger(label: "fault-test") { _ in Handler(recorder: self) }
    }

    struct Handler: LogHandler {
        let recorder: LogRecorder
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .info
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            recorder.append("\(event.level.rawValue.uppercased()) \(event.message)")
        }
    }
}

/// Throw-away certificates for in-process federations, made once per test process.
final class TestPKI: @unchecked Sendable {
    static let names = ["mnist-0", "svhn-0", "usps-0", "evil-0", "flap-0", "slow-0"] + (0..<8).map { "load-\($0)" }
    static let shared: Result<TestPKI, Error> = Result { try TestPKI() }
    let directory: String

    private init() throws {
        let tmp = FileManager.default.temporaryDirectory
        // Remove those of earlier test processes that are gone (the PID is in the name).
        for name in (try? FileManager.default.contentsOfDirectory(atPath: tmp.path)) ?? [] where name.hasPrefix("fedkit-faults-pki-") {
            if let pid = Int32(name.dropFirst("fedkit-faults-pki-".count)), pid != getpid(), kill(pid, 0) != 0 {
                try? FileManager.default.removeItem(atPath: tmp.appendingPathComponent(name).path)
            }
        }
        directory = tmp.appendingPathComponent("fedkit-faults-pki-\(getpid())").path
        try EphemeralCertificates.write(to: directory, clients: Self.names)
    }

    func credentials(_ name: String) throws -> Credentials {
        try Credentials.load(certificateFile: "\(directory)/\(name).crt", keyFile: "\(directory)/\(name).key", caFile: "\(directory)/ca.crt")
    }
}

enum InProcess {
    static let quiet: Logger = { var l = Logger(label: "quiet"); l.logLevel = .critical; return l }()

    static func configuration(rounds: Int = 1, minFit: Int = 1, minClients: Int? = nil, stateDirectory: String? = nil) -> CoordinatorConfiguration {
        var c = CoordinatorConfiguration(strategy: .fedbn, model: .digitCNN(norm: .batch, widths: [4, 4, 8, 16, 8], seed: 5), rounds: rounds)
        c.minFitClients = minFit
        c.minClients = minClients
        c.roundTimeout = 20
        c.connectTimeout = 20
        c.training.batchSize = 8
        c.training.learningRate = 0.05
        c.stateDirectory = stateDirectory
        return c
    }

    static func runtime(_ name: String, domain: Digits5.Domain, train: Int = 40, model: ModelSpec) throws -> ClientRuntime {
        let d = Digits5.makeDomains([domain], trainCount: train, testCount: 20, seed: 3)[0]
        return try ClientRuntime(name: name, learner: LocalLearner(model: try model.build(), data: LocalData(train: d.train, test: d.test), clientName: name),
                                 stateDirectory: nil, logger: quiet)
    }

    static func hello(_ name: String, declaredExamples: UInt64, domain: String) -> Fedkit_V1_Hello {
        var hello = Fedkit_V1_Hello()
        hello.clientName = name
        hello.protocolVersion = WireProtocol.currentVersion
        hello.capabilities = WireProtocol.capabilities
        hello.dataset.domain = domain
        hello.dataset.trainExamples = declaredExamples
        hello.dataset.testExamples = 20
        return hello
    }

    /// A hello that announces `streamed-payload` is sent with 1 KiB chunks, so that even the
    /// test model's small updates are chunked and, the server agreeing, streamed.
    static func connect(_ name: String, port: Int, hello: Fedkit_V1_Hello) async throws -> PeerConnection {
        var config = ClientConfiguration.mutualTLS(credentials: try TestPKI.shared.get().credentials(name), hello: hello)
        config.serverHostname = "localhost"
        if hello.capabilities.contains(WireProtocol.streamedPayloadCapability) { config.chunkSize = 1024 }
        config.logger = quiet
        return try await FederationClient.connect(host: "127.0.0.1", port: port, configuration: config)
    }

    /// An honest in-process client: the real `ClientRuntime` behind a real TLS session, sending
    /// its updates streamed as fed-client does.
    static func serveHonestly(_ runtime: ClientRuntime, port: Int) async throws {
        var hello = hello(runtime.name, declaredExamples: 0, domain: "")
        hello.dataset = runtime.datasetSummary
        hello.capabilities.append(WireProtocol.streamedPayloadCapability)
        let connection = try await connect(runtime.name, port: port, hello: hello)
        _ = try await runtime.serve(connection)
    }

    /// What an in-process fault test starts from: a coordinator logging into `recorder`, its
    /// TLS server, and the honest "mnist-0" (MNIST) serving from `honest`.
    struct Federation {
        let recorder: LogRecorder
        let coordinator: Coordinator
        let server: FederationServer
        let honest: Task<Void, Error>
        var port: Int { server.port }

        /// Closes the server, then waits for the honest client to finish.
        func close() async {
            await server.close()
            _ = try? await honest.value
        }
    }

    static func start(_ configuration: CoordinatorConfiguration,
                      server adjust: (inout ServerConfiguration) -> Void = { _ in }) async throws -> Federation {
        let recorder = LogRecorder()
        let coordinator = try Coordinator(configuration: configuration, logger: recorder.logger)
        let server = try await startServer { config in
            config.capabilities += coordinator.capabilities  // as fed-server does
            adjust(&config)
        }
        let port = server.port
        let honest = try runtime("mnist-0", domain: .mnist, model: configuration.model)
        return Federation(recorder: recorder, coordinator: coordinator, server: server,
                          honest: Task { try await serveHonestly(honest, port: port) })
    }

    static func startServer(_ adjust: (inout ServerConfiguration) -> Void = { _ in }) async throws -> FederationServer {
        var serverConfig = ServerConfiguration.mutualTLS(credentials: try TestPKI.shared.get().credentials("server"))
        serverConfig.logger = quiet
        adjust(&serverConfig)
        return try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: serverConfig)
    }

    /// The global model as raw bytes per tensor, for exact comparisons.
    static func bytes(_ state: StateDictionary) -> [String: Foundation.Data] {
        Dictionary(uniqueKeysWithValues: state.entries.map { ($0.name, Foundation.Data(buffer: UnsafeBufferPointer(start: $0.tensor.data, count: $0.tensor.count))) })
    }
}
