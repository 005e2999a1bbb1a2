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
    /// Since the process started: attempts at rounds (more than the rounds when quorums were
    /// missed), updates averaged and refused, clients dropped from rounds, tensor bytes.
    public var roundAttempts = 0
    public var updatesAccepted = 0
    public var updatesRefused = 0
    public var clientsDropped = 0
    public var bytesReceived = 0
    public var bytesSent = 0

    public init(strategy: String, totalRounds: Int, completedRounds: UInt64, phase: Phase = .waiting, started: Double = Date().timeIntervalSince1970) {
        self.strategy = strategy
        self.totalRounds = totalRounds
        self.completedRounds = completedRounds
        self.phase = phase
        self.started = started
    }
}

/// The coordinator's status, readable from any thread while the coordinator runs.
public final class StatusBoard: @unchecked Sendable {
    private let lock = NSLock()
    private var status: FederationStatus

    public init(_ status: FederationStatus) { self.status = status }

    /// A copy of the status as it is now.
    public func snapshot() -> FederationStatus { lock.withLock { status } }

    func update(_ change: (inout FederationStatus) -> Void) { lock.withLock { change(&status) } }
}
