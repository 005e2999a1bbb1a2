/// Vectorized reductions over raw buffers: eight Float partial sums, combined in Double.
///
/// Used by the normalization layers for their per-channel and per-row statistics;
/// `Reference.sum` is the plain loop they are tested against.
public enum Reductions {
    /// Σ x[i] for i in 0..<count.
    @inlinable
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Float>()
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 8 <= count {
            acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            i += 8
        }
        var s = 0.0
        for lane in 0..<8 { s += Double(acc[lane]) }
        while i < count { s += Double(x[i]); i += 1 }
        return s
    }

    /// Σ (x[i] − mean)² for i in 0..<count.
    @inlinable
    public static func sumOfSquaredDeviations(_ x: UnsafePointer<Float>, count: Int, mean: Float) -> Double {
        var acc = SIMD8<Float>()
        let m = SIMD8<Float>(repeating: mean)
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 8 <= count {
            let d = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - m
            acc += d * d
            i += 8
        }
        var s = 0.0
        for lane in 0..<8 { s += Double(acc[lane]) }
        while i < count { let d = Double(x[i]) - Double(mean); s += d * d; i += 1 }
        return s
    }
}

extension Reductions {
    /// Σ (x[i] − y[i])² for i in 0..<count: eight Float partial sums, combined in Double (keep
    /// `count` to a few thousand for Float's precision). NaN or infinite when an x[i] or y[i] is.
    @inlinable
    public static func sumOfSquaredDifferences(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, count: Int) -> Double {
        var acc = SIMD8<Float>()
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeRawPointer(y)
        while i + 8 <= count {
            let d = rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self) - ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += d * d
            i += 8
        }
        var s = 0.0
        for lane in 0..<8 { s += Double(acc[lane]) }
        while i < count { let d = Double(x[i]) - Double(y[i]); s += d * d; i += 1 }
        return s
    }

    /// Whether every x[i] is finite (no NaN, no ±Inf): x − x is 0 for finite values and NaN otherwise.
    @inlinable
    public static func allFinite(_ x: UnsafePointer<Float>, count: Int) -> Bool {
        var acc = SIMD8<Float>()
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
            acc += v - v
            i += 8
        }
        var s: Float = 0
        for lane in 0..<8 { s += acc[lane] }
        while i < count { s += x[i] - x[i]; i += 1 }
        return s == 0
    }
}

extension Reference {
    /// Σ x[i], accumulated in Double one element at a time.
    public static func sum(_ x: UnsafePointer<Float>, count: Int) -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(x[i]) }
        return s
    }
}
