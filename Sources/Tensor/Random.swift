/// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator used to expand one seed into
/// well-mixed state words (and, in `Data`, to derive independent sub-seeds).
public struct SplitMix64: Sendable {
    public var state: UInt64

    @inlinable public init(seed: UInt64) { state = seed }

    @inlinable public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A small, fast, seeded random number generator (xoshiro256**, Blackman & Vigna 2018,
/// seeded through SplitMix64): the same seed gives the same numbers on every machine, which
/// makes runs reproducible. The one generator of FedKit: weights are initialized from it here,
/// and `Data` draws its images, partitions and shuffles from it.
///
/// It conforms to `RandomNumberGenerator`, so it works with `shuffle(using:)` and
/// `Int.random(in:using:)`, but those standard-library algorithms may change between Swift
/// versions; FedKit uses its own helpers (`uniform`, `nextNormal`, and those of `Data`).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    @usableFromInline var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    /// Creates a generator whose whole output is determined by `seed`.
    public init(seed: UInt64) {
        var sm = SplitMix64(seed: seed)
        s0 = sm.next(); s1 = sm.next(); s2 = sm.next(); s3 = sm.next()
    }

    /// The next 64 random bits.
    @inlinable
    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    @inlinable static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1).
    @inlinable
    public mutating func nextUniform() -> Float {
        Float(next() >> 40) * (1.0 / Float(1 << 24))
    }

    /// Uniform in [low, high).
    @inlinable
    public mutating func uniform(_ low: Float, _ high: Float) -> Float {
        low + (high - low) * nextUniform()
    }

    /// Standard normal (Box–Muller).
    public mutating func nextNormal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, 1e-300)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2))
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
import Darwin
@inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
@inline(__always) private func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif

extension Tensor {
    /// Fills with uniform values in [low, high).
    public func fillUniform(_ low: Float, _ high: Float, using rng: inout SeededGenerator) {
        for i in 0..<count { data[i] = rng.uniform(low, high) }
    }

    /// Fills with normal values of the given mean and standard deviation.
    public func fillNormal(mean: Float = 0, std: Float = 1, using rng: inout SeededGenerator) {
        for i in 0..<count { data[i] = mean + std * rng.nextNormal() }
    }
}
