import Foundation

/// One client's part of a round's training.
public struct ClientFit: Codable, Sendable, Equatable {
    public var client: String
    public var examples: Int
    public var trainLoss: Float
    public var trainAccuracy: Float
    /// With norm clipping: the update's distance from the global model, when it was farther
    /// than the bound and so counted scaled down to it.
    public var clippedFromDistance: Double? = nil
}

/// One client's evaluation of the global model on its own (domain's) test split.
public struct ClientEvaluation: Codable, Sendable, Equatable {
    public var client: String
    public var domain: String
    public var loss: Float
    public var accuracy: Float
    public var examples: Int
}

/// What happened in one round: one line of the metrics file.
///
/// Deterministic for a given seed and configuration (no wall-clock times: those go to
/// `RoundTiming`), so two runs can be compared byte for byte.
public struct RoundMetrics: Codable, Sendable, Equatable {
    public var round: UInt64
    /// Clients asked to train, and those whose update was averaged.
    public var selected: [String]
    public var fit: [ClientFit]
    /// Updates refused, with the reason ("svhn-0: tensor fc1.weight has shape …").
    public var refused: [String]
    /// Clients that did not answer before the deadline or disconnected.
    public var dropped: [String]
    public var evaluation: [ClientEvaluation]
    /// Mean test accuracy over the clients that evaluated (nil when not evaluated this round).
    public var meanAccuracy: Float?
    /// Tensor bytes sent to clients and received from them this round.
    public var bytesOut: Int
    public var bytesIn: Int
    /// Attempts the round needed (1 unless a quorum was missed).
    public var attempts: Int
}

/// Wall-clock durations of one round (kept apart from `RoundMetrics`).
public struct RoundTiming: Codable, Sendable, Equatable {
    public var round: UInt64
    public var fitSeconds: Double
    public var evaluateSeconds: Double
    public var checkpointSeconds: Double
}

enum JSONLines {
    static func encode<T: Encodable>(_ records: [T]) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        var out = Data()
        for r in records { out.append(try encoder.encode(r)); out.append(0x0A) }
        return out
    }
}
