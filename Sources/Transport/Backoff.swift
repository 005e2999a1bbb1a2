import NIOCore

/// Exponential back-off with jitter for reconnecting.
///
/// The n-th delay (n from 0) is `min(maximum, initial * multiplier^n)`, scaled by a random
/// factor in `[1 - jitter, 1]` so that many clients restarted together do not dial in lockstep.
public struct Backoff: Sendable, Equatable {
    /// Delay before the first retry.
    public var initial: TimeAmount
    /// Upper bound of any delay.
    public var maximum: TimeAmount
    /// Growth factor per attempt, >= 1.
    public var multiplier: Double
    /// Fraction of each delay that is randomized, in [0, 1].
    public var jitter: Double

    /// Default: 0.5 s, doubling, at most 30 s, 50 % jitter.
    public static let `default` = Backoff(initial: .milliseconds(500), maximum: .seconds(30), multiplier: 2, jitter: 0.5)

    public init(initial: TimeAmount, maximum: TimeAmount, multiplier: Double, jitter: Double) {
        precondition(multiplier >= 1 && (0...1).contains(jitter) && initial.nanoseconds >= 0 && maximum >= initial,
                     "invalid back-off parameters")
        self.initial = initial
        self.maximum = maximum
        self.multiplier = multiplier
        self.jitter = jitter
    }

    /// Delay before retry number `attempt` (0 for the first retry).
    public func delay<R: RandomNumberGenerator>(attempt: Int, using generator: inout R) -> TimeAmount {
        let base = min(Double(maximum.nanoseconds), Double(initial.nanoseconds) * pow(multiplier, Double(max(0, attempt))))
        let factor = 1 - jitter * Double.random(in: 0..<1, using: &generator)
        return .nanoseconds(Int64(base * factor))
    }

    /// Delay before retry number `attempt`, with the system's random numbers.
    public func delay(attempt: Int) -> TimeAmount {
        var generator = SystemRandomNumberGenerator()
        return delay(attempt: attempt, using: &generator)
    }
}

private func pow(_ base: Double, _ exponent: Double) -> Double {
    var result = 1.0
    var i = 0.0
    while i < exponent && result < 1e18 { result *= base; i += 1 }
    return result
}
