import CBLAS

/// Elementwise operations and reductions over whole tensors.
extension Tensor {
    /// self += alpha · x (same element count).
    public func add(_ x: Tensor, scaledBy alpha: Float = 1) {
        precondition(x.count == count, "add: \(x.shape) to \(shape)")
        cblas_saxpy(Int32(count), alpha, x.data, 1, data, 1)
    }

    /// self *= alpha.
    public func scale(by alpha: Float) {
        cblas_sscal(Int32(count), alpha, data, 1)
    }

    /// Σ of the elements, accumulated in Double.
    public func sum() -> Double {
        var s = 0.0
        for i in 0..<count { s += Double(data[i]) }
        return s
    }

    /// Euclidean norm of the elements.
    public func norm() -> Float {
        count == 0 ? 0 : cblas_snrm2(Int32(count), data, 1)
    }

    /// Σ self·other, accumulated in Double.
    public func dot(_ other: Tensor) -> Double {
        precondition(other.count == count)
        var s = 0.0
        for i in 0..<count { s += Double(data[i]) * Double(other.data[i]) }
        return s
    }

    /// Largest |self − other| over the elements.
    public func maxAbsDifference(_ other: Tensor) -> Float {
        precondition(other.count == count)
        var m: Float = 0
        for i in 0..<count { m = max(m, abs(data[i] - other.data[i])) }
        return m
    }

    /// Whether every element is finite (no NaN, no ±Inf).
    public var isFinite: Bool {
        for i in 0..<count where !data[i].isFinite { return false }
        return true
    }

    /// Index of the largest element in each row of a (rows, cols) tensor.
    public func argmaxRows() -> [Int] {
        precondition(rank == 2)
        let rows = shape[0], cols = shape[1]
        return (0..<rows).map { r in
            let p = data + r * cols
            var best = 0
            for j in 1..<max(cols, 1) where p[j] > p[best] { best = j }
            return best
        }
    }
}
