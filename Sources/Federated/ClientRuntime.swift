import Crypto
import Foundation
import Logging
import NN
import Tensor
import Transport
import Wire

/// Saved beside a client's model after every round it trained.
struct ClientStateMetadata: Codable {
    var client: String
    var round: UInt64
    var model: ModelSpec
}

/// A client daemon's behaviour on one connection: train when asked, evaluate when asked,
/// keep local state.
///
/// The client returns exactly the tensors the server sent; everything else (FedBN's
/// BatchNorm layers) never leaves it. After every round it trained, the whole local model
/// is written atomically to `stateDirectory/state.fkt`, and a restarted client loads it,
/// so its local tensors survive restarts.
/// Used by one task at a time (one connection is served at a time).
public final class ClientRuntime: @unchecked Sendable {
    public let name: String
    public let learner: LocalLearner
    public let stateDirectory: String?
    let logger: Logger
    /// Last round this client trained (from its state file after a restart).
    public private(set) var lastRound: UInt64 = 0
    /// What the last local training produced (nil before the first).
    public private(set) var lastFit: FitSummary?

    /// Why `serve` returned.
    public enum Outcome: Sendable, Equatable {
        /// The server said Goodbye: the federation is over.
        case finished(reason: String)
        /// The connection ended without a Goodbye: reconnect.
        case disconnected
    }

    public init(name: String, learner: LocalLearner, stateDirectory: String?, logger: Logger) throws {
        self.name = name; self.learner = learner; self.stateDirectory = stateDirectory; self.logger = logger
        if let dir = stateDirectory {
            try AtomicFile.makeDirectory(dir)
            AtomicFile.removeStaleTemporaries(of: statePath)
            if let (tensors, meta) = try TensorArchive.read(statePath, as: ClientStateMetadata.self) {
                guard meta.model == learner.model.spec else {
                    throw FederatedError.invalidConfiguration("\(statePath) holds a \(meta.model.architecture.rawValue)/\(meta.model.norm.rawValue) model; this client runs \(learner.model.spec.architecture.rawValue)/\(learner.model.spec.norm.rawValue) (use another --state-dir)")
                }
                try learner.model.load(tensors)
                lastRound = meta.round
                logger.info("restored local state of round \(meta.round) from \(statePath) (SHA-256 of the loaded tensors \(Self.digest(learner.model.snapshot())))")
            }
        }
    }

    var statePath: String { (stateDirectory ?? ".") + "/state.fkt" }

    /// Hex SHA-256 of `tensors`' names and Float32 values in order: lets an operator (and the
    /// fault tests) check that a restarted client holds exactly the state it had saved.
    public static func digest(_ tensors: StateDictionary) -> String {
        var hash = SHA256()
        for (name, t) in tensors.entries {
            hash.update(data: Data(name.utf8))
            hash.update(bufferPointer: UnsafeRawBufferPointer(start: t.data, count: t.count * 4))
        }
        return hash.finalize().map { String(format: "%02x", $0) }.joined()
    }

    /// The Hello's dataset summary for this client's data.
    public var datasetSummary: Fedkit_V1_DatasetSummary {
        var s = Fedkit_V1_DatasetSummary()
        s.domain = learner.data.domain
        s.trainExamples = UInt64(learner.data.trainIndices.count)
        s.testExamples = UInt64(learner.data.test.count)
        s.labelHistogram = learner.data.train.classHistogram(learner.data.trainIndices).map { UInt64($0) }
        return s
    }

    func saveState() throws {
        guard stateDirectory != nil else { return }
        try TensorArchive.write(learner.model.snapshot(), metadata: ClientStateMetadata(client: name, round: lastRound, model: learner.model.spec),
                                to: statePath)
    }

    /// Answers the server's requests on `connection` until it says Goodbye or goes away.
    public func serve(_ connection: PeerConnection) async throws -> Outcome {
        do {
            for try await envelope in connection.inbound {
                switch envelope.body {
                case .fitRequest(let request):
                    try await connection.send(try fit(request))
                case .evaluateRequest(let request):
                    try await connection.send(try evaluate(request))
                case .goodbye(let g):
                    logger.info("server said goodbye: \(g.reason)")
                    await connection.close()
                    return .finished(reason: g.reason)
                case .error(let e):
                    logger.warning("server reported an error: \(e.message)")
                default:
                    logger.warning("ignoring unexpected \(envelope.kind) from the server")
                }
            }
        } catch let error as FederatedError {
            throw error
        } catch {
            logger.warning("connection lost: \(error)")
        }
        return .disconnected
    }

    /// Loads the sent tensors, trains, saves local state and builds the FitResult.
    func fit(_ request: Fedkit_V1_FitRequest) throws -> Envelope {
        let tensors = try request.parameters.wireTensors()
        let names = Set(tensors.map(\.name))
        try learner.model.load(tensors, allowed: { _ in true }, requireAll: false, peer: "server", round: request.round)
        let settings = try TrainingSettings(request.config)
        do {
            let summary = try learner.fit(settings: settings, round: request.round)
            lastRound = request.round
            lastFit = summary
            try saveState()
            logger.info("round \(request.round): trained \(summary.steps) steps on \(summary.examples) examples, loss \(summary.loss), accuracy \(summary.accuracy)")
            var result = Fedkit_V1_FitResult()
            result.round = request.round
            result.parameters = Fedkit_V1_Payload(learner.model.wireTensors { names.contains($0.name) })
            result.numExamples = UInt64(summary.examples)
            result.trainLoss = summary.loss
            result.trainAccuracy = summary.accuracy
            result.wallTimeSeconds = summary.seconds
            return Envelope(.fitResult(result))
        } catch let error as NNError {
            // Training diverged or cannot run: tell the server instead of sending garbage.
            logger.error("round \(request.round): local training failed: \(error)")
            var e = Fedkit_V1_Error()
            e.code = .internal
            e.message = "client \(name) round \(request.round): \(error)"
            return Envelope(.error(e))
        }
    }

    func evaluate(_ request: Fedkit_V1_EvaluateRequest) throws -> Envelope {
        let tensors = try request.parameters.wireTensors()
        try learner.model.load(tensors, allowed: { _ in true }, requireAll: false, peer: "server", round: request.round)
        let s = try learner.evaluate()
        logger.info("round \(request.round): test accuracy \(s.accuracy) on \(s.examples) examples")
        var result = Fedkit_V1_EvaluateResult()
        result.round = request.round
        result.loss = s.loss
        result.accuracy = s.accuracy
        result.numExamples = UInt64(s.examples)
        result.correctPerClass = s.correctPerClass.map { UInt64($0) }
        result.totalPerClass = s.totalPerClass.map { UInt64($0) }
        return Envelope(.evaluateResult(result))
    }
}
