import CBLAS

/// Matrix products through OpenBLAS, with a naive reference beside them.
///
/// Letters used throughout: C (M×N) = alpha · op(A) (M×K) · op(B) (K×N) + beta · C,
/// all row-major; `lda`, `ldb`, `ldc` are row strides in elements.
public enum BLAS {
    /// Sets the number of threads OpenBLAS uses for every later call.
    ///
    /// On a small shared machine several BLAS threads run slower than one; FedKit
    /// sets this explicitly (default 1, `OPENBLAS_NUM_THREADS` or a flag overrides).
    public static func setThreads(_ n: Int) {
        openblas_set_num_threads(Int32(max(1, n)))
    }

    /// The number of threads OpenBLAS will use.
    public static var threads: Int { Int(openblas_get_num_threads()) }

    /// The name of the kernel family OpenBLAS chose for this processor (e.g. `Haswell`,
    /// `Cooperlake`): its own detection, or the `OPENBLAS_CORETYPE` environment variable.
    /// Single-core speed depends on it far more than on anything FedKit does.
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// C = alpha · op(A) · op(B) + beta · C (single precision, row-major).
    /// - Parameters:
    ///   - transA: use Aᵀ (A is stored K×M) instead of A (stored M×K).
    ///   - transB: use Bᵀ (B is stored N×K) instead of B (stored K×N).
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if beta == 0 {
                for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) }
            } else if beta != 1 {
                for i in 0..<m { for j in 0..<n { c[i * ldc + j] *= beta } }
            }
            return
        }
        cblas_sgemm(CblasRowMajor,
                    transA ? CblasTrans : CblasNoTrans,
                    transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb),
                    beta, c, Int32(ldc))
    }
}

/// Naive loop implementations of the fast kernels, used by tests to check them.
public enum Reference {
    /// The triple loop that `BLAS.gemm` must agree with (accumulates in Double).
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int,
        alpha: Float, a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k {
                    let av = transA ? a[p * lda + i] : a[i * lda + p]
                    let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                    s += Double(av) * Double(bv)
                }
                let prior = beta == 0 ? 0 : Double(beta) * Double(c[i * ldc + j])
                c[i * ldc + j] = Float(Double(alpha) * s + prior)
            }
        }
    }
}
