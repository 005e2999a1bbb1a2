import Foundation

/// What a coordinator is doing, for monitoring (`fed-server --status-port`): where the run
/// stands, who is connected, the last round's metrics, and totals since the process started.
public struct FederationStatus: Codable, Sendable, Equatable {
    public enum Phase: String, Codable, Sendable, CaseIterable {
        /// Between rounds, or waiting for clients to connect.
        case waiting
        case training
        case evaluating
        /// Every round done; the daemon is saying goodbye.
        case finished
        /// The run stopped on an error (quorum never met, a checkpoint that could not be written).
        case failed
    }

    public var strategy: String
    public var totalRounds: Int
    /// Rounds completed, those restored from a checkpoint included.
    public var completedRounds: UInt64
    /// The round in progress, if any.
    public var round: UInt64?
    public var phase: Phase
    /// Names of the clients connected now, sorted.
    public var connectedClients: [String] = []
    public var lastRound: RoundMetrics?
    public var lastRoundTiming: RoundTiming?
    /// When the last round ended, in seconds since 1970.
    public var lastRoundEnded: Double?
    /// When this process started coordinating, in seconds since 1970.
    public var started: Double
    /// When the server's certificate, or the first certificate of its chain or its CA,
    /// expires, in seconds since 1970 (set by the daemon from its credentials check).
    public var certificateExpires: Double?
    /// Since the process started: attempts at rounds (more than the rounds when quorums were
    /// missed), updates averaged and refused, clients dropped from rounds, tensor bytes.
    public var roundAttempts = 0
    public var updatesAccepted = 0
    public var updatesRefused = 0
    public var clientsDropped = 0
    public var bytesReceived = 0
    public var bytesSent = 0
    /// Of the updates accepted, those folded as they arrived (streamed); and streamed updates
    /// taken back half-folded (refused on the way, cut off, or late at the deadline).
    public var updatesStreamed = 0
    public var updatesTakenBack = 0

    public init(strategy: String, totalRounds: Int, completedRounds: UInt64, phase: Phase = .waiting, started: Double = Date().timeIntervalSince1970) {
        self.strategy = strategy
        self.totalRounds = totalRounds
        self.completedRounds = completedRounds
        self.phase = phase
        self.started = started
    }
}

/// What a client daemon's client is doing (`fed-client --status-port`): its connection, the
/// last round it trained and evaluated, and counts since the process started.
public struct ClientStatus: Codable, Sendable, Equatable {
    /// One round of local training.
    public struct Fit: Codable, Sendable, Equatable {
        public var round: UInt64
        public var examples: Int
        public var steps: Int
        public var loss: Float
        public var accuracy: Float
        public var seconds: Double
        /// AGC units clipped in the round (FedWon).
        public var clippedUnits: Int
    }

    /// One evaluation of the global model on the client's test split.
    public struct Evaluation: Codable, Sendable, Equatable {
        public var round: UInt64
        public var examples: Int
        public var loss: Float
        public var accuracy: Float
    }

    public var client: String
    public var domain: String
    public var trainExamples: Int
    public var testExamples: Int
    /// In session with the server now.
    public var connected = false
    /// The server said goodbye: the federation is over.
    public var finished = false
    /// Since the process started: sessions established, rounds trained, evaluations, and
    /// requests the client could not use (answered with an Error).
    public var sessions = 0
    public var roundsTrained = 0
    public var evaluations = 0
    public var requestsRefused = 0
    /// The last round trained, restored from local state after a restart.
    public var lastTrainedRound: UInt64
    public var lastFit: Fit?
    public var lastEvaluation: Evaluation?
    /// When the client last finished a request, in seconds since 1970.
    public var lastActivity: Double?
    /// When the client's certificate, or the first certificate of its chain or its CA,
    /// expires, in seconds since 1970 (set by the daemon from its credentials check).
    public var certificateExpires: Double?

    public init(client: String, domain: String, trainExamples: Int, testExamples: Int, lastTrainedRound: UInt64 = 0) {
        self.client = client
        self.domain = domain
        self.trainExamples = trainExamples
        self.testExamples = testExamples
        self.lastTrainedRound = lastTrainedRound
    }
}

/// A status, readable from any thread while its owner (a coordinator, a client) runs.
public final class StatusBoard<Status: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var status: Status

    public init(_ status: Status) { self.status = status }

    /// A copy of the status as it is now.
    public func snapshot() -> Status { lock.withLock { status } }

    func update(_ change: (inout Status) -> Void) { lock.withLock { change(&status) } }

    /// Sets one field of the status (for what its owner does not know, such as when the
    /// daemon's certificate expires).
    public func set<Value>(_ field: WritableKeyPath<Status, Value>, to value: Value) { lock.withLock { status[keyPath: field] = value } }
}
