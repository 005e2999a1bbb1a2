import NN

/// The federated methods FedKit runs.
public enum StrategyKind: String, CaseIterable, Codable, Sendable {
    /// FedAvg (McMahan et al., 2017): every tensor averaged, weighted by examples.
    case fedavg
    /// FedBN (Li et al., ICLR 2021): BatchNorm tensors stay on their client.
    case fedbn
    /// FedWon (Zhuang & Lyu, ICLR 2024): the normalization-free model, AGC in local training.
    case fedwon
    /// FedProx (Li et al., 2020): FedAvg plus μ/2·‖w − w_global‖² in local training.
    case fedprox
}

/// Local-training instructions sent with every fit request.
public struct TrainingSettings: Codable, Sendable, Equatable {
    /// Local epochs per round.
    public var epochs: Int = 1
    /// Examples per SGD step.
    public var batchSize: Int = 32
    /// SGD step size.
    public var learningRate: Float = 0.01
    /// SGD momentum (0: plain SGD, as in the FedBN reference).
    public var momentum: Float = 0
    /// SGD weight decay.
    public var weightDecay: Float = 0
    /// AGC λ; 0 disables clipping.
    public var agcLambda: Float = 0
    /// FedProx μ; 0 disables the proximal term.
    public var proximalMu: Float = 0
    /// Seed of the clients' shuffling.
    public var seed: UInt64 = 1

    public init() {}
}

/// What a strategy decides: who trains, with which instructions, which tensors are shared.
///
/// The arithmetic of combining results lives in `WeightedAverage`; a strategy only
/// answers these questions, once per round.
public protocol Strategy: Sendable {
    var kind: StrategyKind { get }
    /// Whether `entry` travels between server and clients and is averaged; tensors
    /// that are not shared never leave their client.
    func isShared(_ entry: StateEntry) -> Bool
    /// The training instructions of a round, from the federation's base settings.
    func configureFit(round: UInt64, base: TrainingSettings) -> TrainingSettings
    /// Throws when the model cannot be used with this strategy (FedWon on a model with normalization).
    func validate(model: ModelSpec) throws
}

extension Strategy {
    public func configureFit(round: UInt64, base: TrainingSettings) -> TrainingSettings { base }
    public func validate(model: ModelSpec) throws {}
}

public struct FedAvg: Strategy {
    public init() {}
    public var kind: StrategyKind { .fedavg }
    public func isShared(_ entry: StateEntry) -> Bool { true }
    public func configureFit(round: UInt64, base: TrainingSettings) -> TrainingSettings {
        var s = base; s.proximalMu = 0; return s
    }
}

public struct FedBN: Strategy {
    public init() {}
    public var kind: StrategyKind { .fedbn }
    /// Every tensor of every BatchNorm layer (weight, bias, running statistics) stays local.
    public func isShared(_ entry: StateEntry) -> Bool { !entry.isBatchNorm }
    public func configureFit(round: UInt64, base: TrainingSettings) -> TrainingSettings {
        var s = base; s.proximalMu = 0; return s
    }
    public func validate(model: ModelSpec) throws {
        guard model.norm == .batch else {
            throw FederatedError.invalidConfiguration("fedbn keeps BatchNorm layers local, but --norm is \(model.norm.rawValue); use --norm batch")
        }
    }
}

public struct FedWon: Strategy {
    /// λ used when the federation's settings leave AGC off.
    public var defaultLambda: Float
    public init(defaultLambda: Float = 0.32) { self.defaultLambda = defaultLambda }
    public var kind: StrategyKind { .fedwon }
    public func isShared(_ entry: StateEntry) -> Bool { true }
    public func configureFit(round: UInt64, base: TrainingSettings) -> TrainingSettings {
        var s = base
        if s.agcLambda <= 0 { s.agcLambda = defaultLambda }
        s.proximalMu = 0
        return s
    }
    public func validate(model: ModelSpec) throws {
        guard model.norm == .none else {
            throw FederatedError.invalidConfiguration("fedwon trains the normalization-free model, but --norm is \(model.norm.rawValue); use --norm none")
        }
    }
}

public struct FedProx: Strategy {
    /// μ used when the federation's settings leave it at 0.
    public var defaultMu: Float
    public init(defaultMu: Float = 0.01) { self.defaultMu = defaultMu }
    public var kind: StrategyKind { .fedprox }
    public func isShared(_ entry: StateEntry) -> Bool { true }
    public func configureFit(round: UInt64, base: TrainingSettings) -> TrainingSettings {
        var s = base
        if s.proximalMu <= 0 { s.proximalMu = defaultMu }
        return s
    }
}

extension StrategyKind {
    /// The strategy of this kind with its defaults.
    public func make() -> any Strategy {
        switch self {
        case .fedavg: return FedAvg()
        case .fedbn: return FedBN()
        case .fedwon: return FedWon()
        case .fedprox: return FedProx()
        }
    }

    /// The model normalization this strategy is usually run with.
    public var defaultNorm: Norm {
        switch self {
        case .fedwon: return .none
        case .fedavg, .fedbn, .fedprox: return .batch
        }
    }
}

/// Chooses the clients of a round: max(round(fraction·K), minimum) of the K available
/// (all of them when fewer), drawn reproducibly from (seed, round).
public func sampleClients(_ available: [String], fraction: Double, minimum: Int, round: UInt64, seed: UInt64) -> [String] {
    let sorted = available.sorted()
    let k = sorted.count
    guard k > 0 else { return [] }
    let m = min(k, max(Int((fraction * Double(k)).rounded()), minimum, 1))
    if m == k { return sorted }
    var state = seed &* 0x9E37_79B9_7F4A_7C15 ^ round &* 0xBF58_476D_1CE4_E5B9
    var order = sorted
    for i in stride(from: k - 1, to: 0, by: -1) {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        let j = Int((state >> 33) % UInt64(i + 1))
        order.swapAt(i, j)
    }
    return Array(order.prefix(m)).sorted()
}
