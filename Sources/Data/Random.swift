// Seeded pseudo-random numbers for reproducible data.
//
// Everything in the Data module that needs randomness takes a seed and draws from
// `SeededGenerator`, never from the system generator: the same seed gives the same
// bytes on every machine and every run.

import Foundation
import Tensor

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

/// `Data`'s draws, on top of the one generator of FedKit (`Tensor.SeededGenerator`):
/// explicit helpers, so that the same seed gives the same data whatever the Swift version.
extension SeededGenerator {
    /// A uniform `Double` in [0, 1).
    @inlinable
    public mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

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

