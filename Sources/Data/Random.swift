// Seeded pseudo-random numbers for reproducible data.
//
// Everything in the Data module that needs randomness takes a seed and draws from
// `SeededGenerator`, never from the system generator: the same seed gives the same
// bytes on every machine and every run.

import Foundation

/// SplitMix64 (Steele, Lea & Flood 2014): a tiny generator used to expand one seed
/// into well-mixed state words and to derive independent sub-seeds.
@usableFromInline
struct SplitMix64 {
    @usableFromInline var state: UInt64

    @inlinable init(seed: UInt64) { state = seed }

    @inlinable mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Mixes several words into one seed; used to give every (seed, domain, split,
/// sample) its own independent stream.
@inlinable
func mixSeed(_ words: UInt64...) -> UInt64 {
    var sm = SplitMix64(seed: 0x6A09_E667_F3BC_C908)
    var h: UInt64 = 0
    for w in words {
        sm.state ^= w &+ h
        h = sm.next()
    }
    return h
}

/// FNV-1a hash of a string's UTF-8 bytes: stable across runs and machines (unlike
/// `hashValue`), for seeding by name.
func stableHash(_ text: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in text.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}

/// A deterministic random number generator (xoshiro256**, Blackman & Vigna 2018)
/// seeded from one 64-bit value through SplitMix64.
///
/// It conforms to `RandomNumberGenerator`, so it works with `shuffle(using:)` and
/// `Int.random(in:using:)`, but those standard-library algorithms may change between
/// Swift versions; the Data module uses the explicit helpers below instead.
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
        let result = rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotl(s3, 45)
        return result
    }

    @inlinable func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// A uniform `Float` in [0, 1).
    @inlinable
    public mutating func nextFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// A uniform `Double` in [0, 1).
    @inlinable
    public mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// A uniform `Float` in [lo, hi).
    @inlinable
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * nextFloat() }

    /// A uniform integer in 0..<n (n > 0), by Lemire's multiply-shift (bias < 2^-32 for
    /// the small n used here).
    @inlinable
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0 && n <= Int(UInt32.max), "nextInt(below:) needs a bound in 1...2^32-1")
        return Int((UInt64(UInt32(truncatingIfNeeded: next() >> 32)) &* UInt64(n)) >> 32)
    }

    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        var u = nextDouble()
        while u <= 0 { u = nextDouble() }
        let v = nextDouble()
        return (-2 * PortableMath.log(u)).squareRoot() * PortableMath.cos(2 * Double.pi * v)
    }

    /// A Gamma(shape, 1) sample (Marsaglia & Tsang 2000; shape < 1 by boosting).
    public mutating func nextGamma(shape: Double) -> Double {
        precondition(shape > 0, "Gamma shape must be positive")
        if shape < 1 {
            var u = nextDouble()
            while u <= 0 { u = nextDouble() }
            return nextGamma(shape: shape + 1) * PortableMath.pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            var x: Double, v: Double
            repeat {
                x = nextGaussian()
                v = 1 + c * x
            } while v <= 0
            v = v * v * v
            let u = nextDouble()
            if u < 1 - 0.0331 * x * x * x * x { return d * v }
            if u > 0, PortableMath.log(u) < 0.5 * x * x + d * (1 - v + PortableMath.log(v)) { return d * v }
        }
    }

    /// A sample from the symmetric Dirichlet(alpha, ..., alpha) over `count` outcomes.
    public mutating func nextDirichlet(alpha: Double, count: Int) -> [Double] {
        var g = (0..<count).map { _ in nextGamma(shape: alpha) }
        var sum = g.reduce(0, +)
        if sum <= 0 {  // every gamma underflowed (tiny alpha): put all mass on one outcome
            g = [Double](repeating: 0, count: count)
            g[nextInt(below: count)] = 1
            sum = 1
        }
        return g.map { $0 / sum }
    }

    /// Shuffles `array` in place (Fisher–Yates with this generator's own draws, so the
    /// order is stable across Swift versions).
    public mutating func shuffle<T>(_ array: inout [T]) {
        var i = array.count - 1
        while i > 0 {
            let j = nextInt(below: i + 1)
            array.swapAt(i, j)
            i -= 1
        }
    }

    /// A random permutation of 0..<n.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        shuffle(&p)
        return p
    }
}

