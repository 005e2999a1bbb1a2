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

/// Lets one model at a time be alive in a process that hosts several logical clients.
public actor ModelGate {
    private var busy = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    public init() {}

    /// Runs `body` once no other body of this gate is running.
    public func run<T: Sendable>(_ body: @Sendable () throws -> T) async throws -> T {
        while busy { await withCheckedContinuation { waiters.append($0) } }
        busy = true
        defer {
            busy = false
            if !waiters.isEmpty { waiters.removeFirst().resume() }
        }
        return try body()
    }
}

/// A client daemon's behaviour on one connection: train when asked, evaluate when asked,
/// keep local state.
///
/// The client returns exactly the tensors the server sent; everything else (FedBN's
/// BatchNorm layers) never leaves it. After every round it trained, the whole local model
/// is written atomically to `stateDirectory/state.fkt`, and a restarted client loads it,
/// so its local tensors survive restarts.
///
/// A runtime either keeps its model in memory (`init(name:learner:…)`) or builds it for
/// each request from its state file and drops it afterwards (`init(name:spec:data:…)`),
/// so that one process can host many logical clients in little memory.
/// Used by one task at a time (one connection is served at a time).
public final class ClientRuntime: @unchecked Sendable {
    public let name: String
    public let spec: ModelSpec
    public let data: LocalData
    public let stateDirectory: String?
    let logger: Logger
    /// The model kept in memory, or nil when it is built per request.
    private let resident: LocalLearner?
    /// Where this client stands, for monitoring; readable from any thread.
    public let status: StatusBoard<ClientStatus>
    /// Last round this client trained (from its state file after a restart).
    public var lastRound: UInt64 { status.snapshot().lastTrainedRound }
    /// What the last local training produced (nil before the first).
    public var lastFit: ClientStatus.Fit? { status.snapshot().lastFit }

    /// Why `serve` returned.
    public enum Outcome: Sendable, Equatable {
        /// The server said Goodbye: the federation is over.
        case finished(reason: String)
        /// The connection ended without a Goodbye: reconnect.
        case disconnected
    }

    /// A client whose model stays in memory between rounds.
    public init(name: String, learner: LocalLearner, stateDirectory: String?, logger: Logger) throws {
        self.name = name; self.spec = learner.model.spec; self.data = learner.data
        self.stateDirectory = stateDirectory; self.logger = logger; self.resident = learner
        self.status = StatusBoard(ClientStatus(client: name, domain: learner.data.domain, trainExamples: learner.data.trainIndices.count,
                                               testExamples: learner.data.test.count))
        try restore(into: learner.model)
    }

    /// A client whose model lives only while it trains or evaluates; between requests its
    /// state is on disk (`stateDirectory` is required).
    public init(name: String, spec: ModelSpec, data: LocalData, stateDirectory: String, logger: Logger) throws {
        self.name = name; self.spec = spec; self.data = data
        self.stateDirectory = stateDirectory; self.logger = logger; self.resident = nil
        self.status = StatusBoard(ClientStatus(client: name, domain: data.domain, trainExamples: data.trainIndices.count,
                                               testExamples: data.test.count))
        try AtomicFile.makeDirectory(stateDirectory)
        AtomicFile.removeStaleTemporaries(of: (stateDirectory as String) + "/state.fkt")
        if let (_, meta) = try readState() { status.update { $0.lastTrainedRound = meta.round } }
    }

    /// The in-memory learner of a resident runtime.
    public var learner: LocalLearner {
        guard let resident else { preconditionFailure("ClientRuntime \(name) builds its model per request") }
        return resident
    }

    var statePath: String { (stateDirectory ?? ".") + "/state.fkt" }

    func readState() throws -> (tensors: StateDictionary, metadata: ClientStateMetadata)? {
        guard stateDirectory != nil, let (tensors, meta) = try TensorArchive.read(statePath, as: ClientStateMetadata.self) else { return nil }
        guard meta.model == spec else {
            throw FederatedError.invalidConfiguration("\(statePath) holds a \(meta.model.architecture.rawValue)/\(meta.model.norm.rawValue) model; this client runs \(spec.architecture.rawValue)/\(spec.norm.rawValue) (use another --state-dir)")
        }
        return (tensors, meta)
    }

    private func restore(into model: Model) throws {
        guard let dir = stateDirectory else { return }
        try AtomicFile.makeDirectory(dir)
        AtomicFile.removeStaleTemporaries(of: statePath)
        if let (tensors, meta) = try readState() {
            try model.load(tensors)
            status.update { $0.lastTrainedRound = meta.round }
            logger.info("restored local state of round \(meta.round) from \(statePath) (SHA-256 of the loaded tensors \(Self.digest(model.snapshot())))")
        }
    }

    /// Runs `body` with this client's learner: the resident one, or one built from the state file.
    func withLearner<T>(_ body: (LocalLearner) throws -> T) throws -> T {
        if let resident { return try body(resident) }
        let learner = LocalLearner(model: try spec.build(), data: data, clientName: name)
        if let (tensors, _) = try readState() { try learner.model.load(tensors) }
        return try body(learner)
    }

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
        s.domain = data.domain
        s.trainExamples = UInt64(data.trainIndices.count)
        s.testExamples = UInt64(data.test.count)
        s.labelHistogram = data.train.classHistogram(data.trainIndices).map { UInt64($0) }
        return s
    }

    /// Writes the whole local model, as trained in `round`.
    func saveState(_ model: Model, round: UInt64) throws {
        guard stateDirectory != nil else { return }
        try TensorArchive.write(model.liveState(), metadata: ClientStateMetadata(client: name, round: round, model: spec), to: statePath)
    }

    /// Answers the server's requests on `connection` until it says Goodbye or goes away.
    /// With a `gate`, training and evaluation wait for the process's other clients.
    ///
    /// A request this client cannot use (undecodable tensors, names or shapes of another
    /// model, a training config out of range) is answered with an `Error` naming the reason,
    /// which ends the session (the server logs it and drops the client from the round); the
    /// model is untouched and `serve` returns `.disconnected`, so a daemon reconnects and
    /// rejoins. Only a failure to keep local state (`FederatedError.writeFailed`) is thrown.
    public func serve(_ connection: PeerConnection, gate: ModelGate? = nil) async throws -> Outcome {
        func handle(_ what: String, round: UInt64, _ work: @escaping @Sendable () throws -> Envelope) async throws -> Envelope {
            do {
                if let gate { return try await gate.run(work) }
                return try work()
            } catch let error as FederatedError {
                if case .writeFailed = error { throw error }  // local state cannot be kept: stop, loudly
                return refusal(error)
            } catch {
                return refusal(error)
            }
            func refusal(_ error: any Error) -> Envelope {
                status.update { $0.requestsRefused += 1 }
                logger.error("round \(round): cannot use the server's \(what): \(error)")
                var e = Fedkit_V1_Error()
                e.code = .malformed
                e.message = "\(name) cannot use the \(what) of round \(round): \(error)"
                return Envelope(.error(e))
            }
        }
        status.update { $0.connected = true; $0.sessions += 1 }
        defer { status.update { $0.connected = false } }
        do {
            for try await envelope in connection.inbound {
                switch envelope.body {
                case .fitRequest(let request):
                    try await connection.send(try await handle("training request", round: request.round) { try self.fit(request) })
                case .evaluateRequest(let request):
                    try await connection.send(try await handle("evaluation request", round: request.round) { try self.evaluate(request) })
                case .goodbye(let g):
                    logger.info("server said goodbye: \(g.reason)")
                    status.update { $0.finished = true }
                    await connection.close()
                    return .finished(reason: g.reason)
                case .error(let e):
                    logger.warning("server reported an error: \(e.message)")
                default:
                    logger.warning("ignoring unexpected \(envelope.kind) from the server")
                }
            }
        } catch let error as FederatedError {
            await connection.close()
            throw error
        } catch {
            logger.warning("connection lost: \(error)")
            await connection.close()
        }
        return .disconnected
    }

    /// Loads the sent tensors, trains, saves local state and builds the FitResult.
    ///
    /// A request that is refused (undecodable tensors, wrong names or shapes, non-finite
    /// values, a training config out of range) throws before the model is touched. When local
    /// training fails (it diverged), the client answers with an `Error` and its model is put
    /// back as it was before the request: the failed steps, BatchNorm running statistics
    /// included, are not kept.
    func fit(_ request: Fedkit_V1_FitRequest) throws -> Envelope {
        let tensors = try request.parameters.wireTensors()
        let names = Set(tensors.map(\.name))
        let settings = try TrainingSettings(request.config)
        return try withLearner { learner in
            let before = learner.model.snapshot()
            try learner.model.load(tensors, allowed: { _ in true }, requireAll: false, peer: "server", round: request.round)
            do {
                let summary = try learner.fit(settings: settings, round: request.round)
                try saveState(learner.model, round: request.round)
                status.update {
                    $0.roundsTrained += 1; $0.lastTrainedRound = request.round; $0.lastActivity = Date().timeIntervalSince1970
                    $0.lastFit = .init(round: request.round, examples: summary.examples, steps: summary.steps, loss: summary.loss,
                                       accuracy: summary.accuracy, seconds: summary.seconds, clippedUnits: summary.clippedUnits)
                }
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
                // Training diverged or cannot run: tell the server instead of sending garbage,
                // and keep none of it (a diverged forward pass has already moved the running statistics).
                try learner.model.load(before)
                logger.error("round \(request.round): local training failed: \(error)")
                status.update { $0.requestsRefused += 1 }
                var e = Fedkit_V1_Error()
                e.code = .internal
                e.message = "client \(name) round \(request.round): \(error)"
                return Envelope(.error(e))
            }
        }
    }

    func evaluate(_ request: Fedkit_V1_EvaluateRequest) throws -> Envelope {
        let tensors = try request.parameters.wireTensors()
        return try withLearner { learner in
            try learner.model.load(tensors, allowed: { _ in true }, requireAll: false, peer: "server", round: request.round)
            let s: EvaluationSummary
            do {
                s = try learner.evaluate()
            } catch let error as NNError {
                logger.error("round \(request.round): evaluation failed: \(error)")
                status.update { $0.requestsRefused += 1 }
                var e = Fedkit_V1_Error()
                e.code = .internal
                e.message = "client \(name) round \(request.round): evaluation failed: \(error)"
                return Envelope(.error(e))
            }
            logger.info("round \(request.round): test accuracy \(s.accuracy) on \(s.examples) examples")
            status.update {
                $0.evaluations += 1; $0.lastActivity = Date().timeIntervalSince1970
                $0.lastEvaluation = .init(round: request.round, examples: s.examples, loss: s.loss, accuracy: s.accuracy)
            }
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
}
