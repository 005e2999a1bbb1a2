import Foundation
import Logging
import NN
import Tensor
import Transport
import Wire

/// Everything the coordinator needs to run a federation.
public struct CoordinatorConfiguration: Sendable {
    public var strategy: StrategyKind
    public var model: ModelSpec
    /// Rounds to run in total (a resumed run continues up to this number).
    public var rounds: Int
    /// Fraction C of connected clients sampled each round.
    public var fraction: Double = 1
    /// Fewest clients a round trains with: it waits for this many to connect, and
    /// aggregates only when at least this many updates arrived (else it retries).
    public var minFitClients: Int = 1
    /// Clients that must be connected before the first round starts (default: `minFitClients`).
    public var minClients: Int?
    /// Seconds a round waits for its clients' results before closing with those it has.
    public var roundTimeout: Double = 600
    /// Evaluate every N rounds (the last round is always evaluated).
    public var evaluateEvery: Int = 1
    /// Base local-training settings; the strategy adjusts them per round.
    public var training = TrainingSettings()
    /// Seed of client sampling (model initialization uses `model.seed`).
    public var seed: UInt64 = 1
    /// Where the checkpoint, metrics and final model are written; nil keeps nothing on disk.
    public var stateDirectory: String?
    /// Attempts of a round that misses its quorum before the run fails.
    public var maxRoundAttempts: Int = 3
    /// Seconds to wait after a round attempt that missed its quorum, times the attempt number,
    /// before the next attempt; nil: a tenth of `roundTimeout`, at most 5 s.
    public var roundRetryBackoff: Double?
    /// Largest number of examples one client's update may claim (see README: weighting policy).
    public var maxExamplesPerClient: Int = 1_000_000
    /// Refused messages after which a client is disconnected.
    public var maxOffences: Int = 3
    /// Seconds to wait for `minFitClients` clients before the run fails.
    public var connectTimeout: Double = 600
    /// Model transfers in flight at once (each holds one serialized copy of the model).
    public var maxConcurrentSends: Int = 4
    /// Requests outstanding at once (sent and not yet answered); nil for all clients at once.
    /// A process hosting many logical clients holds every request it received until it gets
    /// to it, so a simulation of many clients bounds this to bound their memory.
    public var maxInFlight: Int?
    /// How the streaming average keeps its sums: Float64 (reproducible whatever the order in
    /// which updates arrive) or Float32 (half the memory and a faster fold).
    public var aggregationPrecision: AggregationPrecision = .float64
    /// Norm clipping: the largest L2 distance (over all shared tensors) a client's update counts
    /// with from the global model it was sent; a farther one counts as the global model plus
    /// its difference scaled to this length (`UpdateClipping`). nil: no bound.
    public var maxUpdateNorm: Double?
    /// The local learning rate of round r is `training.learningRate × learningRateDecay^(r−1)`
    /// (1: constant, as in the FedBN and FedWon protocols).
    public var learningRateDecay: Double = 1
    /// While a round's clients are sent the model and their updates folded, keep the model in
    /// the page cache (an unnamed file in the state directory, else the temporary directory)
    /// instead of the server's memory (`ServedModel`). Ignored with `maxUpdateNorm`, which reads
    /// the model at every fold, and where that directory is itself in memory (tmpfs).
    public var modelInPageCache = true

    public init(strategy: StrategyKind, model: ModelSpec, rounds: Int) {
        self.strategy = strategy; self.model = model; self.rounds = rounds
    }

    /// The run in one line, as the coordinator will carry it out (the strategy's own
    /// training defaults applied), for the log at start.
    public var summary: String {
        let t = strategy.make().configureFit(round: 1, base: training)
        var local = "\(t.epochs) epoch\(t.epochs == 1 ? "" : "s"), batch \(t.batchSize), lr \(t.learningRate)"
        if learningRateDecay != 1 { local += " × \(learningRateDecay)^(round−1)" }
        local += t.momentum > 0 ? ", momentum \(t.momentum)" : ", plain SGD"
        if t.weightDecay > 0 { local += ", weight decay \(t.weightDecay)" }
        if t.agcLambda > 0 { local += ", AGC λ \(t.agcLambda)" }
        if t.proximalMu > 0 { local += ", proximal μ \(t.proximalMu)" }
        let sample = fraction == 1 ? "every connected client" : "\(fraction * 100)% of the connected clients (at least \(minFitClients))"
        let start = minClients.map { "; starts when \($0) are connected" } ?? ""
        return "\(strategy.rawValue) on \(model.architecture.rawValue)/\(model.norm.rawValue), \(rounds) round\(rounds == 1 ? "" : "s")\(start): each asks \(sample), "
            + "waits up to \(roundTimeout) s and averages what arrived if at least \(minFitClients) answered (else retries, \(maxRoundAttempts) attempts); "
            + "local training: \(local); evaluation every \(evaluateEvery == 1 ? "round" : "\(evaluateEvery) rounds and the last"); "
            + "\(aggregationPrecision.rawValue) sums\(maxUpdateNorm.map { ", updates clipped at distance \($0)" } ?? ""); "
            + (stateDirectory.map { "checkpoints in \($0)" } ?? "no --state-dir: nothing kept on disk, no resume")
    }

    /// Checks the combination before anything starts.
    /// - Throws: `FederatedError.invalidConfiguration` quoting the values.
    public func validate() throws {
        func bad(_ m: String) -> FederatedError { .invalidConfiguration(m) }
        guard rounds >= 1 else { throw bad("--rounds (\(rounds)) must be at least 1") }
        guard fraction > 0 && fraction <= 1 else { throw bad("--fraction (\(fraction)) must be in (0, 1]") }
        guard minFitClients >= 1 else { throw bad("--min-fit-clients (\(minFitClients)) must be at least 1") }
        if let m = minClients, m < minFitClients { throw bad("--min-clients (\(m)) is below --min-fit-clients (\(minFitClients))") }
        guard roundTimeout > 0 && roundTimeout.isFinite else { throw bad("--round-timeout (\(roundTimeout)) must be positive") }
        guard connectTimeout > 0 && connectTimeout.isFinite else { throw bad("--connect-timeout (\(connectTimeout)) must be a positive number of seconds") }
        if let m = maxInFlight, m < 1 { throw bad("--max-in-flight (\(m)) must be at least 1 (leave it out for every sampled client at once)") }
        guard maxExamplesPerClient >= 1 else { throw bad("--max-examples-per-client (\(maxExamplesPerClient)) must be at least 1: every update claims at least one example") }
        guard maxRoundAttempts >= 1 else { throw bad("--max-round-attempts (\(maxRoundAttempts)) must be at least 1") }
        if let b = roundRetryBackoff, !(b.isFinite && b >= 0) { throw bad("--round-retry-backoff (\(b)) must be a non-negative number of seconds") }
        if let b = maxUpdateNorm, !(b.isFinite && b > 0) { throw bad("--max-update-norm (\(b)) must be a positive number") }
        guard learningRateDecay > 0 && learningRateDecay <= 1 else { throw bad("--lr-decay (\(learningRateDecay)) must be in (0, 1]") }
        guard evaluateEvery >= 1 else { throw bad("--evaluate-every (\(evaluateEvery)) must be at least 1") }
        guard training.epochs >= 1 else { throw bad("--epochs (\(training.epochs)) must be at least 1") }
        guard training.batchSize >= 1 else { throw bad("--batch-size (\(training.batchSize)) must be at least 1") }
        guard training.learningRate > 0 && training.learningRate.isFinite else { throw bad("--lr (\(training.learningRate)) must be positive") }
        guard training.momentum >= 0 && training.momentum < 1 else { throw bad("--momentum (\(training.momentum)) must be in [0, 1)") }
        guard training.weightDecay >= 0 && training.weightDecay.isFinite else { throw bad("--weight-decay (\(training.weightDecay)) must be 0 or more") }
        guard training.agcLambda >= 0 && training.agcLambda.isFinite else { throw bad("--agc-lambda (\(training.agcLambda)) must be 0 (off) or more") }
        guard training.proximalMu >= 0 && training.proximalMu.isFinite else { throw bad("--fedprox-mu (\(training.proximalMu)) must be 0 or more") }
        if training.batchSize == 1 && model.norm == .batch {
            throw bad("--batch-size 1 cannot train BatchNorm (--norm batch): batch statistics need at least 2 examples; use --norm none (FedWon) or a larger batch")
        }
        try strategy.make().validate(model: model)
    }
}

/// Saved after every round: enough to resume the run exactly.
struct CheckpointMetadata: Codable {
    var round: UInt64
    var strategy: StrategyKind
    var model: ModelSpec
    var metrics: [RoundMetrics]
}

/// The coordinator's round engine: samples clients, sends them the global model,
/// folds their updates into a streaming weighted average as they arrive, closes each
/// round at its deadline, evaluates, and checkpoints atomically after every round.
public actor Coordinator {
    public let configuration: CoordinatorConfiguration
    let strategy: any Strategy
    /// The global model; only the strategy's shared tensors are ever sent or averaged. While a
    /// round trains they may be in the page cache instead (`ServedModel`), and read zero here.
    let model: Model
    /// Bytes of tensor data in one client's update (the model's shared tensors).
    public nonisolated let updateBytes: Int
    /// The wire capabilities a server in front of this coordinator announces on top of its own:
    /// `streamed-payload` (updates are folded as they arrive), except with norm clipping,
    /// which needs an update whole before adding any of it.
    public nonisolated var capabilities: [String] {
        configuration.maxUpdateNorm == nil ? [WireProtocol.streamedPayloadCapability] : []
    }
    /// Where streamed updates keep their undo logs (unnamed files): the state directory, else
    /// the system's temporary directory.
    nonisolated var undoDirectory: String { configuration.stateDirectory ?? NSTemporaryDirectory() }
    /// Where the run stands, for monitoring; readable from any thread.
    public nonisolated let status: StatusBoard<FederationStatus>
    let logger: Logger
    /// Called after every round with its metrics (progress lines, tests).
    let onRound: @Sendable (RoundMetrics, RoundTiming) -> Void

    struct Client {
        var connection: PeerConnection
        var domain: String
        var declaredExamples: Int
        var offences = 0
        /// Requests sent on this connection and not yet answered: an answer to one of them
        /// after its round closed is late, not an offence.
        var unanswered: Set<Request> = []
    }

    /// A request as its answer names it.
    struct Request: Hashable {
        var evaluate: Bool
        var round: UInt64
    }
    /// Connected clients by certificate name.
    var clients: [String: Client] = [:]

    enum Phase: Equatable { case idle, fit, evaluate }
    /// What the round in progress is waiting for.
    var phase: Phase = .idle
    var phaseRound: UInt64 = 0
    var expecting: Set<String> = []
    /// Clients of the round in progress that disconnected or could not be sent their request.
    var lost: Set<String> = []
    var aggregator: WeightedAverage?
    /// A client's update being folded as it arrives (streamed order), by client.
    struct Incoming {
        var result: Fedkit_V1_FitResult
        var claimed: Int
        var payload: PayloadStream
        let update: WeightedAverage.UpdateStream
    }
    var incoming: [String: Incoming] = [:]
    /// Streamed transfers whose remaining chunks are dropped unread (the update was refused,
    /// or came too late), by client: the transfer and how many chunks are still to come.
    var ignoring: [String: (transfer: UInt64, remaining: UInt32)] = [:]
    /// The precision of the running sums in use (nil before the first round).
    var aggregatorPrecision: AggregationPrecision? { aggregator?.precision }
    var fits: [ClientFit] = []
    var evaluations: [ClientEvaluation] = []
    var refused: [String] = []
    var bytesIn = 0

    /// Rounds completed (restored from the checkpoint on resume).
    public private(set) var completedRound: UInt64 = 0
    public private(set) var metrics: [RoundMetrics] = []
    var timings: [RoundTiming] = []
    /// The round this run started with (after a resume, the one after the checkpoint).
    var firstRoundOfRun: UInt64 = 1

    public init(configuration: CoordinatorConfiguration, logger: Logger,
                onRound: @escaping @Sendable (RoundMetrics, RoundTiming) -> Void = { _, _ in }) throws {
        try configuration.validate()
        self.configuration = configuration
        let strategy = configuration.strategy.make(), model = try configuration.model.build()
        self.strategy = strategy
        self.model = model
        self.updateBytes = model.entries.filter(strategy.isShared).reduce(0) { $0 + $1.value.count * 4 }
        self.status = StatusBoard(FederationStatus(strategy: configuration.strategy.rawValue, totalRounds: configuration.rounds, completedRounds: 0))
        self.logger = logger
        self.onRound = onRound
        if let dir = configuration.stateDirectory {
            try AtomicFile.makeDirectory(dir)
            for file in [Self.checkpointPath(dir), dir + "/metrics.jsonl", dir + "/timings.jsonl", dir + "/final-model.fkt"] {
                let n = AtomicFile.removeStaleTemporaries(of: file)
                if n > 0 { logger.notice("removed \(n) temporary file(s) left beside \(file) by an interrupted write") }
            }
            if let (tensors, meta) = try Self.checkpoint(in: dir, for: configuration) {
                try model.load(tensors, requireAll: false)
                completedRound = meta.round
                metrics = meta.metrics
                status.update { $0.completedRounds = meta.round; $0.lastRound = meta.metrics.last }
                logger.info("resuming after round \(meta.round) from \(Self.checkpointPath(dir))")
            }
        }
    }

    static func checkpointPath(_ dir: String) -> String { dir + "/checkpoint.fkt" }

    /// The checkpoint in `dir`, if there is one, refused when another run (strategy or model)
    /// wrote it.
    static func checkpoint(in dir: String, for configuration: CoordinatorConfiguration) throws -> (tensors: StateDictionary, metadata: CheckpointMetadata)? {
        guard let (tensors, meta) = try TensorArchive.read(checkpointPath(dir), as: CheckpointMetadata.self) else { return nil }
        guard meta.strategy == configuration.strategy, meta.model == configuration.model else {
            throw FederatedError.invalidConfiguration(
                "\(checkpointPath(dir)) was written by a \(meta.strategy.rawValue) run of \(meta.model.architecture.rawValue)/\(meta.model.norm.rawValue); this run is \(configuration.strategy.rawValue) of \(configuration.model.architecture.rawValue)/\(configuration.model.norm.rawValue) (use another --state-dir)")
        }
        return (tensors, meta)
    }

    /// Everything `init` checks, without writing anything: the configuration, the model it
    /// builds, and the checkpoint it would resume from (which must be this run's and load
    /// into the model). For `fed-server --check`.
    /// - Returns: the round the run would resume after, or nil for a fresh start.
    public static func check(_ configuration: CoordinatorConfiguration) throws -> UInt64? {
        try configuration.validate()
        let model = try configuration.model.build()
        guard let dir = configuration.stateDirectory, let (tensors, meta) = try checkpoint(in: dir, for: configuration) else { return nil }
        try model.load(tensors, requireAll: false)
        return meta.round
    }

    /// The global model's shared tensors (a copy). Read it between rounds or after `run`: while
    /// a round trains with the model in the page cache, the model's own tensors read zero.
    public func globalState() -> StateDictionary { model.snapshot(where: strategy.isShared) }

    // MARK: Connections

    /// Registers an established client session and starts reading from it.
    public func accept(_ connection: PeerConnection) {
        let name = connection.peerName
        if let old = clients[name] {
            logger.info("client \"\(name)\" reconnected; closing its previous connection")
            // The new session was never sent the request in flight: do not wait for its answer.
            if expecting.remove(name) != nil { lost.insert(name) }
            dropIncoming(name, because: "it reconnected")
            Task { await old.connection.close() }
        }
        let summary = connection.hello.dataset
        clients[name] = Client(connection: connection, domain: summary.domain.isEmpty ? name : summary.domain,
                               declaredExamples: Int(clamping: summary.trainExamples))
        logger.info("client \"\(name)\" joined (domain \(summary.domain), \(summary.trainExamples) training examples)")
        publishConnected()
        let id = ObjectIdentifier(connection)
        Task {
            do {
                for try await envelope in connection.inbound { self.receive(envelope, from: name, connection: id) }
            } catch {
                self.log(.info, "client \"\(name)\" connection ended: \(error)")
            }
            self.disconnected(name, connection: id)
        }
    }

    func log(_ level: Logger.Level, _ message: String) { logger.log(level: level, "\(message)") }

    func disconnected(_ name: String, connection id: ObjectIdentifier) {
        guard let c = clients[name], ObjectIdentifier(c.connection) == id else { return }
        clients[name] = nil
        dropIncoming(name, because: "it disconnected")
        if expecting.remove(name) != nil {
            lost.insert(name)
            logger.warning("client \"\(name)\" disconnected during round \(phaseRound)")
        }
        logger.info("client \"\(name)\" left")
        publishConnected()
    }

    func publishConnected() {
        let names = clients.keys.sorted()
        status.update { $0.connectedClients = names }
    }

    /// Refuses a message: logged with the client and reason; repeated offences disconnect the
    /// client. A late answer to a request it was sent is refused the same way but is no offence:
    /// an honest client on a slow or interrupted network sends those.
    func refuse(_ name: String, _ reason: String, offence: Bool = true) {
        logger.warning("refused from client \"\(name)\": \(reason)")
        refused.append("\(name): \(reason)")
        guard offence, var c = clients[name] else { return }
        c.offences += 1
        clients[name] = c
        if c.offences == configuration.maxOffences {  // once: what was already in flight is refused, not re-disconnected
            logger.warning("disconnecting client \"\(name)\" after \(c.offences) refused messages")
            let conn = c.connection
            var error = Fedkit_V1_Error()
            error.code = .outOfOrder
            error.message = "disconnected after \(c.offences) refused messages; last: \(reason)"
            Task { try? await conn.send(Envelope(.error(error))); await conn.close() }
        }
    }

    func receive(_ envelope: Envelope, from name: String, connection id: ObjectIdentifier) {
        guard let c = clients[name], ObjectIdentifier(c.connection) == id else { return }
        switch envelope.body {
        case .fitResult(let r):
            let answered = clients[name]?.unanswered.remove(Request(evaluate: false, round: r.round)) != nil
            var streamed: Fedkit_V1_ChunkedPayload?
            if case .chunked(let reference)? = r.parameters.content { streamed = reference }
            if let streamed, incoming[name] != nil || ignoring[name] != nil {
                refuse(name, "fit result for round \(r.round) announces transfer \(streamed.transferID) while another is still arriving")
                return
            }
            guard phase == .fit, r.round == phaseRound, expecting.contains(name) else {
                if let streamed { ignore(streamed.transferID, chunks: streamed.chunkCount, from: name) }
                if answered {
                    refuse(name, "fit result for round \(r.round) arrived late (current round \(phaseRound))", offence: false)
                } else {
                    refuse(name, "fit result for round \(r.round) was not requested (current round \(phaseRound), \(phase == .fit ? "training" : "not training"))")
                }
                return
            }
            if let streamed {
                beginIncoming(r, streamed, from: name, declaredExamples: c.declaredExamples)
                return
            }
            expecting.remove(name)
            guard let aggregator else { return }
            switch Self.fold(r, from: name, declaredExamples: c.declaredExamples, cap: configuration.maxExamplesPerClient, into: aggregator) {
            case .refused(let reason):
                refuse(name, reason)
            case .accepted(let claimed, let bytes):
                bytesIn += bytes
                var fit = ClientFit(client: name, examples: claimed, trainLoss: r.trainLoss, trainAccuracy: r.trainAccuracy)
                if let bound = aggregator.clipping?.bound, let distance = aggregator.lastDistance, distance > bound {
                    fit.clippedFromDistance = distance
                    logger.info("round \(r.round): client \"\(name)\"'s update is \(distance) from the global model; counted at the bound, \(bound)")
                }
                fits.append(fit)
            }
        case .evaluateResult(let r):
            let answered = clients[name]?.unanswered.remove(Request(evaluate: true, round: r.round)) != nil
            guard phase == .evaluate, r.round == phaseRound, expecting.contains(name) else {
                if answered {
                    refuse(name, "evaluation result for round \(r.round) arrived late (current round \(phaseRound))", offence: false)
                } else {
                    refuse(name, "evaluation result for round \(r.round) was not requested")
                }
                return
            }
            expecting.remove(name)
            guard r.accuracy.isFinite, (0...1).contains(r.accuracy), r.loss.isFinite else {
                refuse(name, "evaluation with accuracy \(r.accuracy), loss \(r.loss)")
                return
            }
            evaluations.append(ClientEvaluation(client: name, domain: c.domain, loss: r.loss, accuracy: r.accuracy, examples: Int(clamping: r.numExamples)))
        case .chunk(let chunk):
            takeChunk(chunk, from: name)
        case .goodbye(let g):
            logger.info("client \"\(name)\" said goodbye: \(g.reason)")
        case .error(let e):
            logger.warning("client \"\(name)\" reported an error: \(e.message)")
            expecting.remove(name)
        default:
            refuse(name, "unexpected \(envelope.kind) message")
        }
    }

    // MARK: Streamed updates

    /// Starts folding a streamed update: its envelope came first, with the weight; its tensors
    /// follow as chunks (`takeChunk`). The client stays expected until the last chunk.
    func beginIncoming(_ r: Fedkit_V1_FitResult, _ reference: Fedkit_V1_ChunkedPayload, from name: String, declaredExamples: Int) {
        guard let aggregator else { return }
        do {
            let claimed = try Self.checkExamples(r, declaredExamples: declaredExamples, cap: configuration.maxExamplesPerClient)
            let payload = try PayloadStream(reference)
            let update = try aggregator.beginStream(weight: Double(claimed), client: name, round: r.round, undoDirectory: undoDirectory)
            var result = r
            result.parameters = Fedkit_V1_Payload()
            incoming[name] = Incoming(result: result, claimed: claimed, payload: payload, update: update)
        } catch {
            expecting.remove(name)
            ignore(reference.transferID, chunks: reference.chunkCount, from: name)
            refuse(name, "\(error)")
        }
    }

    /// Folds one chunk of a client's streamed update; the last one, once the whole payload is
    /// verified, commits the update. Any failure takes out what the update had added.
    func takeChunk(_ chunk: Fedkit_V1_PayloadChunk, from name: String) {
        if let skipped = ignoring[name], skipped.transfer == chunk.transferID {
            ignoring[name] = skipped.remaining > 1 ? (skipped.transfer, skipped.remaining - 1) : nil
            return
        }
        guard var open = incoming[name], open.payload.transferID == chunk.transferID else {
            refuse(name, "chunk \(chunk.index) of transfer \(chunk.transferID), which no fit result announced")
            return
        }
        let update = open.update
        do {
            let complete = try open.payload.take(chunk) { try update.take($0) }
            guard complete else {
                incoming[name] = open
                return
            }
            try update.commit()
            incoming[name] = nil
            expecting.remove(name)
            status.update { $0.updatesStreamed += 1 }
            bytesIn += update.bytes
            let r = open.result
            fits.append(ClientFit(client: name, examples: open.claimed, trainLoss: r.trainLoss, trainAccuracy: r.trainAccuracy))
        } catch {
            update.rollback()
            status.update { $0.updatesTakenBack += 1 }
            incoming[name] = nil
            expecting.remove(name)
            let left = open.payload.chunkCount - min(open.payload.chunkCount, chunk.index + 1)
            if left > 0 { ignore(chunk.transferID, chunks: left, from: name) }
            refuse(name, "\(error)")
        }
    }

    /// Drops the rest of a streamed transfer unread.
    func ignore(_ transfer: UInt64, chunks: UInt32, from name: String) {
        if chunks > 0 { ignoring[name] = (transfer, chunks) }
    }

    /// Takes out a client's update that was still arriving (its connection is gone).
    func dropIncoming(_ name: String, because reason: String) {
        ignoring[name] = nil
        guard let open = incoming.removeValue(forKey: name) else { return }
        open.update.rollback()
        status.update { $0.updatesTakenBack += 1 }
        logger.warning("round \(open.result.round): client \"\(name)\"'s update was taken back after \(open.payload.receivedBytes) of \(open.payload.totalBytes) bytes: \(reason)")
    }

    /// Takes out every update still arriving when the round closes: its remaining chunks are dropped.
    func closeIncoming(round: UInt64) {
        for (name, open) in incoming.sorted(by: { $0.key < $1.key }) {
            open.update.rollback()
            status.update { $0.updatesTakenBack += 1 }
            ignore(open.payload.transferID, chunks: open.payload.chunkCount - open.payload.chunksReceived, from: name)
            logger.warning("round \(round): client \"\(name)\"'s update had \(open.payload.receivedBytes) of \(open.payload.totalBytes) bytes at the deadline; taken back")
        }
        incoming = [:]
    }

    /// What became of one client's `FitResult`.
    enum Fold: Equatable {
        /// Folded into the running sum with weight `examples`; `bytes` of tensor data.
        case accepted(examples: Int, bytes: Int)
        /// Not folded in (the sum is untouched), for `reason`.
        case refused(reason: String)
    }

    /// The checks of one client's update, in order, and its folding into `aggregator`: the
    /// example-count bound (see README: weighting policy), tensor decoding, and whole-update
    /// validation. Pure apart from `aggregator`, so the fuzz tests drive exactly this chain.
    /// - Parameters:
    ///   - declaredExamples: the training examples the client declared in its Hello (0: none).
    ///   - cap: `maxExamplesPerClient`.
    static func fold(_ r: Fedkit_V1_FitResult, from name: String, declaredExamples: Int, cap: Int,
                     into aggregator: WeightedAverage) -> Fold {
        do {
            let claimed = try checkExamples(r, declaredExamples: declaredExamples, cap: cap)
            let tensors = try r.parameters.wireTensors()
            try aggregator.add(tensors, weight: Double(claimed), client: name, round: r.round)
            return .accepted(examples: claimed, bytes: tensors.reduce(0) { $0 + $1.bytes.count })
        } catch {
            return .refused(reason: "\(error)")
        }
    }

    /// The example count a `FitResult` claims, within its bound (see README: weighting policy).
    /// - Throws: `FederatedError.badUpdate` naming the claim and the bound.
    static func checkExamples(_ r: Fedkit_V1_FitResult, declaredExamples: Int, cap: Int) throws -> Int {
        let claimed = Int(clamping: r.numExamples)
        let bound = min(cap, declaredExamples > 0 ? declaredExamples : Int.max)
        guard claimed >= 1, claimed <= bound else {
            throw ExamplesOutOfBounds(message: "claims \(r.numExamples) training examples; allowed 1...\(bound) (declared \(declaredExamples) in its Hello, cap \(cap))")
        }
        return claimed
    }

    struct ExamplesOutOfBounds: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    // MARK: Rounds

    /// Waits until `expecting` is empty or `deadline` passes.
    func waitForAnswers(until deadline: ContinuousClock.Instant) async throws {
        while !expecting.isEmpty && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
            aggregator?.closeStaleUndoLogs()  // a long wait for stragglers: never to disk
        }
    }

    /// Sends a request to every named client, keeping at most `maxInFlight` unanswered
    /// (all at once when unset); clients it cannot reach are dropped from `expecting`.
    /// Returns by `deadline` whatever the clients do (see `sendAll`).
    func dispatch(_ envelope: Envelope, to names: [String], until deadline: ContinuousClock.Instant) async throws {
        guard let limit = configuration.maxInFlight, limit < names.count else {
            for failed in await sendAll(envelope, to: names, before: deadline) where expecting.remove(failed) != nil { lost.insert(failed) }
            return
        }
        var sent: [String] = []
        for name in names {
            while sent.filter({ expecting.contains($0) }).count >= max(limit, 1) && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            guard ContinuousClock.now < deadline else { return }
            guard expecting.contains(name) else { continue }
            sent.append(name)
            for failed in await sendAll(envelope, to: [name], before: deadline) where expecting.remove(failed) != nil { lost.insert(failed) }
        }
    }

    /// Sends `envelope` to every named client, at most `maxConcurrentSends` at a time: each
    /// send holds a serialized copy of the model until the socket has taken it, so this bounds
    /// the server's memory however many clients there are.
    ///
    /// A client that has not taken its request by `deadline` cannot answer in time: its
    /// connection is closed and it leaves the federation then (it reconnects by itself), so a
    /// client whose network drops every packet while its connection looks open, or one too slow
    /// to receive the model, never holds a round past its deadline nor is sampled again on that
    /// connection. Clients not yet sent to by the deadline are skipped.
    /// - Returns: the clients the envelope could not be sent to.
    func sendAll(_ envelope: Envelope, to names: [String], before deadline: ContinuousClock.Instant) async -> [String] {
        let request: Request? = switch envelope.body {
        case .fitRequest(let r): Request(evaluate: false, round: r.round)
        case .evaluateRequest(let r): Request(evaluate: true, round: r.round)
        default: nil
        }
        if let request { for n in names { clients[n]?.unanswered.insert(request) } }
        let targets = names.compactMap { n in clients[n].map { (n, $0.connection) } }
        let limit = max(1, configuration.maxConcurrentSends)
        enum Outcome: Sendable { case sent, failed(String), overdue(String, PeerConnection) }
        let outcomes = await withTaskGroup(of: Outcome.self) { group in
            var outcomes: [Outcome] = []
            for (i, (name, conn)) in targets.enumerated() {
                if i >= limit, let o = await group.next() { outcomes.append(o) }
                group.addTask {
                    guard ContinuousClock.now < deadline else { return .failed(name) }
                    do {
                        try await conn.send(envelope, before: deadline)
                        return .sent
                    } catch TransportError.sendDeadlineExceeded {
                        return .overdue(name, conn)
                    } catch {
                        return .failed(name)
                    }
                }
            }
            for await o in group { outcomes.append(o) }
            return outcomes
        }
        var failed: [String] = []
        for outcome in outcomes {
            switch outcome {
            case .sent:
                break
            case .failed(let name):
                failed.append(name)
            case .overdue(let name, let conn):
                failed.append(name)
                logger.warning("client \"\(name)\" had not taken its request by the deadline; closed its connection")
                if let c = clients[name], c.connection === conn {
                    clients[name] = nil
                    logger.info("client \"\(name)\" left")
                }
            }
        }
        return failed
    }

    /// Runs the remaining rounds with the clients that `server` admits, then says Goodbye.
    /// - Returns: the metrics of every round (including those before a resume).
    /// - Throws: when not enough clients connect in time, a round misses its quorum
    ///   `maxRoundAttempts` times, or a checkpoint cannot be written.
    public func run(connections: AsyncStream<PeerConnection>) async throws -> [RoundMetrics] {
        let acceptor = Task { for await c in connections { self.accept(c) } }
        defer { acceptor.cancel() }
        let total = UInt64(configuration.rounds)
        var round = completedRound + 1
        firstRoundOfRun = round
        do {
            while round <= total {
                try await runRound(round)
                round += 1
            }
        } catch {
            status.update { $0.phase = .failed; $0.round = nil }
            throw error
        }
        if let dir = configuration.stateDirectory {
            try TensorArchive.write(model.liveState(where: strategy.isShared), metadata: CheckpointMetadata(round: completedRound, strategy: configuration.strategy,
                                                                                 model: configuration.model, metrics: metrics),
                                    to: dir + "/final-model.fkt")
        }
        status.update { $0.phase = .finished; $0.round = nil }
        for (_, c) in clients { await c.connection.goodbye(reason: "federation finished after round \(completedRound)") }
        clients.removeAll()
        publishConnected()
        return metrics
    }

    func runRound(_ round: UInt64) async throws {
        let fitStart = ContinuousClock.now
        // The clients are sent the model from the page cache, and its own memory is given back
        // until the round's average is written into it, or, without one, it is put back.
        let served = serveModel(round: round)
        var record: RoundMetrics
        do {
            record = try await fit(round, served: served)
        } catch {
            if let served { try restore(served, round: round) }
            throw error
        }
        let fitSeconds = (ContinuousClock.now - fitStart).seconds

        let evalStart = ContinuousClock.now
        if round % UInt64(configuration.evaluateEvery) == 0 || round == UInt64(configuration.rounds) {
            var request = Fedkit_V1_EvaluateRequest()
            request.round = round
            let tensors = model.wireTensorViews(where: strategy.isShared)
            request.parameters = Fedkit_V1_Payload(tensors)
            let targets = clients.keys.sorted()
            phase = .evaluate; phaseRound = round; expecting = Set(targets); evaluations = []
            status.update { $0.phase = .evaluating }
            record.bytesOut += tensors.reduce(0) { $0 + $1.bytes.count } * targets.count
            try await dispatch(Envelope(.evaluateRequest(request)), to: targets, until: evalStart + .seconds(configuration.roundTimeout))
            try await waitForAnswers(until: evalStart + .seconds(configuration.roundTimeout))
            phase = .idle; expecting = []
            record.evaluation = evaluations.sorted { $0.client < $1.client }
            if !evaluations.isEmpty {
                record.meanAccuracy = evaluations.map(\.accuracy).reduce(0, +) / Float(evaluations.count)
            }
            record.refused += refused.filter { !record.refused.contains($0) }
        }
        let evaluateSeconds = (ContinuousClock.now - evalStart).seconds

        completedRound = round
        metrics.append(record)
        let checkpointStart = ContinuousClock.now
        if let dir = configuration.stateDirectory {
            // A checkpoint that cannot be written stops the run: the previous one stays intact.
            try TensorArchive.write(model.liveState(where: strategy.isShared), metadata: CheckpointMetadata(round: round, strategy: configuration.strategy,
                                                                                 model: configuration.model, metrics: metrics),
                                    to: Self.checkpointPath(dir))
            try AtomicFile.write(JSONLines.encode(metrics), to: dir + "/metrics.jsonl")
        }
        let timing = RoundTiming(round: round, fitSeconds: fitSeconds, evaluateSeconds: evaluateSeconds,
                                 checkpointSeconds: (ContinuousClock.now - checkpointStart).seconds)
        timings.append(timing)
        let finished = record
        status.update {
            $0.phase = .waiting; $0.round = nil; $0.completedRounds = round
            $0.lastRound = finished; $0.lastRoundTiming = timing; $0.lastRoundEnded = Date().timeIntervalSince1970
            $0.updatesAccepted += finished.fit.count; $0.updatesRefused += finished.refused.count
            $0.clientsDropped += finished.dropped.count
            $0.bytesReceived += finished.bytesIn; $0.bytesSent += finished.bytesOut
        }
        if let dir = configuration.stateDirectory {
            try? AtomicFile.write(JSONLines.encode(timings), to: dir + "/timings.jsonl")
        }
        onRound(record, timing)
    }

    /// Why the model stays in memory while rounds train; nil when the page cache keeps it.
    nonisolated var modelStaysInMemoryBecause: String? {
        if !configuration.modelInPageCache { return "so configured" }
        if configuration.maxUpdateNorm != nil { return "--max-update-norm measures updates from it" }
        if !ServedModel.saves(in: undoDirectory) { return "\(undoDirectory) is itself in memory (tmpfs)" }
        return nil
    }

    /// Where the model is while rounds train, in a sentence for the start-up log.
    public nonisolated var modelPlacement: String {
        modelStaysInMemoryBecause.map { "the model stays in memory while rounds train: \($0)" }
            ?? "the model is kept in the page cache while rounds train (an unnamed file in \(undoDirectory))"
    }

    /// Moves the model's shared tensors to the page cache for the round's sends (`ServedModel`),
    /// unless clipping measures updates from the model, the configuration keeps it in memory,
    /// or the undo directory is itself in memory; nil then, or when the file cannot be written.
    func serveModel(round: UInt64) -> ServedModel? {
        guard modelStaysInMemoryBecause == nil else { return nil }
        do {
            return try ServedModel(model, where: strategy.isShared, directory: undoDirectory)
        } catch {
            logger.warning("round \(round): the model stays in memory while it is sent; it could not be written to \(undoDirectory): \(error)")
            return nil
        }
    }

    /// Puts the model's values back after a round that ended without an average.
    /// - Throws: `FederatedError.modelLost` when they cannot be read back; the last checkpoint
    ///   is intact, and a run started again resumes from it.
    func restore(_ served: ServedModel, round: UInt64) throws {
        do {
            try served.restore()
        } catch {
            logger.critical("round \(round): the global model could not be read back from \(undoDirectory): \(error)")
            throw FederatedError.modelLost(round: round, reason: "\(error)")
        }
    }

    /// Runs a round's fit attempts until one aggregates; returns its metrics (evaluation to come).
    /// - Throws: when not enough clients connect in time or every attempt misses its quorum.
    func fit(_ round: UInt64, served: ServedModel?) async throws -> RoundMetrics {
        let connectDeadline = ContinuousClock.now + .seconds(configuration.connectTimeout)
        var attempts = 0
        var record: RoundMetrics
        while true {
            attempts += 1
            // The first round of this run waits for --min-clients; later rounds go on with the quorum.
            let needed = round == firstRoundOfRun && attempts == 1 ? (configuration.minClients ?? configuration.minFitClients) : configuration.minFitClients
            while clients.count < needed {
                guard ContinuousClock.now < connectDeadline else {
                    throw FederatedError.quorumNotMet(round: round, answered: clients.count, required: needed)
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            let selected = sampleClients(Array(clients.keys), fraction: configuration.fraction, minimum: configuration.minFitClients,
                                         round: round, seed: configuration.seed)
            let shared = model.entries.filter(strategy.isShared)
            var settings = strategy.configureFit(round: round, base: configuration.training)
            if configuration.learningRateDecay < 1 {
                settings.learningRate = Float(Double(settings.learningRate) * pow(configuration.learningRateDecay, Double(round - 1)))
            }
            let bytesOut: Int
            let deadline: ContinuousClock.Instant
            do {
                // The request reads the model's own memory (no wire copy); the model is written
                // only after dispatch has returned, when no send of it is left in progress.
                var request = Fedkit_V1_FitRequest()
                request.round = round
                let tensors = served?.wireTensors() ?? model.wireTensorViews(where: strategy.isShared)
                request.parameters = Fedkit_V1_Payload(tensors)
                request.config = settings.proto
                bytesOut = tensors.reduce(0) { $0 + $1.bytes.count } * selected.count
                phase = .fit; phaseRound = round
                status.update { $0.phase = .training; $0.round = round; $0.roundAttempts += 1 }
                expecting = Set(selected); lost = []; fits = []; refused = []; bytesIn = 0
                // One accumulator for the whole run, emptied each attempt; its memory is given
                // back as each round's average is written, and comes back in huge pages.
                if let aggregator { aggregator.reset() } else {
                    // Clipping measures updates from the model as sent: it is not written until the round's average.
                    aggregator = WeightedAverage(template: shared.map { ($0.name, $0.value.shape) }, precision: configuration.aggregationPrecision,
                                                 clipping: configuration.maxUpdateNorm.map { UpdateClipping(bound: $0, reference: model) })
                }
                // Each attempt has the whole round timeout, however long the back-offs before it were.
                deadline = ContinuousClock.now + .seconds(configuration.roundTimeout)
                try await dispatch(Envelope(.fitRequest(request)), to: selected, until: deadline)
                served?.releasePages()
            }
            try await waitForAnswers(until: deadline)
            closeIncoming(round: round)
            // Silent until the deadline, or gone (disconnected, unreachable) during the round.
            let dropped = expecting.union(lost).sorted()
            if !dropped.isEmpty { logger.warning("round \(round): no answer from \(dropped.joined(separator: ", ")) before the deadline") }
            phase = .idle
            expecting = []
            record = RoundMetrics(round: round, selected: selected, fit: fits.sorted { $0.client < $1.client }, refused: refused,
                                  dropped: dropped, evaluation: [], meanAccuracy: nil, bytesOut: bytesOut, bytesIn: bytesIn, attempts: attempts)
            if let damage = aggregator?.damage {
                logger.error("round \(round): the running sums cannot be used (\(damage)); the attempt is void")
            } else if fits.count >= configuration.minFitClients, let aggregator, try aggregator.writeAverage(into: model, releasingSums: true) {
                break
            }
            guard attempts < configuration.maxRoundAttempts else {
                logger.error("round \(round): \(fits.count) update(s), \(configuration.minFitClients) required; no attempt left (\(attempts) made)")
                throw FederatedError.roundAttemptsExhausted(round: round, attempts: attempts, answered: fits.count, required: configuration.minFitClients)
            }
            // Back off before the next attempt, so clients that are still joining get in and a
            // client that joins and leaves at once cannot use up the attempts in a moment.
            let backoff = (configuration.roundRetryBackoff ?? min(5.0, configuration.roundTimeout / 10)) * Double(attempts)
            logger.warning("round \(round): \(fits.count) update(s), \(configuration.minFitClients) required; retrying (attempt \(attempts + 1) of \(configuration.maxRoundAttempts)) in \(backoff) s")
            try await Task.sleep(for: .seconds(backoff))
        }
        return record
    }
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) * 1e-18 }
}

extension TrainingSettings {
    /// The protobuf form sent in a FitRequest.
    public var proto: Fedkit_V1_TrainingConfig {
        var c = Fedkit_V1_TrainingConfig()
        c.epochs = UInt32(epochs); c.batchSize = UInt32(batchSize)
        c.learningRate = learningRate; c.momentum = momentum; c.weightDecay = weightDecay
        c.agcLambda = agcLambda; c.fedproxMu = proximalMu; c.seed = seed
        return c
    }

    /// Settings from a FitRequest's config.
    /// - Throws: `FederatedError.invalidConfiguration` for values local training cannot use.
    public init(_ c: Fedkit_V1_TrainingConfig) throws {
        self.init()
        epochs = Int(c.epochs); batchSize = Int(c.batchSize)
        learningRate = c.learningRate; momentum = c.momentum; weightDecay = c.weightDecay
        agcLambda = c.agcLambda; proximalMu = c.fedproxMu; seed = c.seed
        guard (1...1000).contains(epochs), (1...65536).contains(batchSize), learningRate.isFinite, learningRate > 0,
              momentum.isFinite, momentum >= 0, weightDecay.isFinite, weightDecay >= 0, agcLambda.isFinite, agcLambda >= 0,
              proximalMu.isFinite, proximalMu >= 0 else {
            throw FederatedError.invalidConfiguration("training config out of range: epochs \(c.epochs), batch \(c.batchSize), lr \(c.learningRate), momentum \(c.momentum), weight decay \(c.weightDecay), AGC λ \(c.agcLambda), μ \(c.fedproxMu)")
        }
    }
}
