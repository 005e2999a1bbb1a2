import XCTest
@testable import Tensor

/// Fast kernels against their naive references.
final class KernelTests: XCTestCase {
    func random(_ shape: [Int], seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let t = Tensor(zeros: shape)
        t.fillNormal(using: &rng)
        return t
    }

    func maxRelativeError(_ a: Tensor, _ b: Tensor) -> Float {
        var m: Float = 0
        for i in 0..<a.count { m = max(m, abs(a[i] - b[i]) / (1 + abs(b[i]))) }
        return m
    }

    func testGemmAgreesWithReferenceForEveryTransposeAndOddSizes() {
        var seed: UInt64 = 1
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (17, 1, 33), (64, 49, 75), (2, 130, 9)] {
            for transA in [false, true] {
                for transB in [false, true] {
                    seed += 1
                    let a = random(transA ? [k, m] : [m, k], seed: seed)
                    let b = random(transB ? [n, k] : [k, n], seed: seed + 100)
                    let c1 = random([m, n], seed: seed + 200), c2 = c1.copy()
                    let lda = transA ? m : k, ldb = transB ? k : n
                    BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.7, a: a.data, lda: lda,
                              b: b.data, ldb: ldb, beta: 0.3, c: c1.data, ldc: n)
                    Reference.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.7, a: a.data, lda: lda,
                                   b: b.data, ldb: ldb, beta: 0.3, c: c2.data, ldc: n)
                    XCTAssertLessThan(maxRelativeError(c1, c2), 1e-4, "gemm \(m)x\(n)x\(k) tA=\(transA) tB=\(transB)")
                }
            }
        }
    }

    /// im2col followed by GEMM equals a direct convolution, including stride, padding and odd sizes.
    func testIm2colConvolutionAgreesWithDirectConvolution() {
        let cases: [(n: Int, c: Int, h: Int, w: Int, o: Int, k: Int, s: Int, p: Int)] = [
            (1, 1, 5, 5, 1, 3, 1, 0), (2, 3, 7, 6, 4, 5, 1, 2), (3, 2, 9, 11, 5, 3, 2, 1),
            (1, 3, 23, 23, 2, 11, 4, 2), (2, 4, 6, 6, 3, 1, 1, 0), (1, 2, 4, 4, 2, 3, 3, 2),
        ]
        for (i, t) in cases.enumerated() {
            let g = ConvGeometry(channels: t.c, height: t.h, width: t.w, kernelH: t.k, kernelW: t.k, stride: t.s, padding: t.p)
            let x = random([t.n, t.c, t.h, t.w], seed: UInt64(10 + i))
            let w = random([t.o, t.c, t.k, t.k], seed: UInt64(20 + i))
            let bias = random([t.o], seed: UInt64(30 + i))
            let col = Tensor(zeros: [g.patchSize, t.n * g.positions])
            Im2col.unfold(g, batch: t.n, input: x.data, col: col.data)
            let out2 = Tensor(zeros: [t.o, t.n * g.positions])
            BLAS.gemm(transA: false, transB: false, m: t.o, n: t.n * g.positions, k: g.patchSize, alpha: 1, a: w.data, lda: g.patchSize,
                      b: col.data, ldb: t.n * g.positions, beta: 0, c: out2.data, ldc: t.n * g.positions)
            let direct = Tensor(zeros: [t.n, t.o, g.outHeight, g.outWidth])
            Reference.conv2d(g, batch: t.n, outChannels: t.o, input: x.data, weight: w.data, bias: bias.data, output: direct.data)
            var maxErr: Float = 0
            for img in 0..<t.n {
                for o in 0..<t.o {
                    for p in 0..<g.positions {
                        let fast = out2[o * t.n * g.positions + img * g.positions + p] + bias[o]
                        maxErr = max(maxErr, abs(fast - direct[(img * t.o + o) * g.positions + p]))
                    }
                }
            }
            XCTAssertLessThan(maxErr, 1e-4, "case \(t)")
        }
    }

    /// fold is the transpose of unfold: <unfold(x), y> = <x, fold(y)>.
    func testFoldIsTheAdjointOfUnfold() {
        let g = ConvGeometry(channels: 3, height: 9, width: 7, kernelH: 3, kernelW: 3, stride: 2, padding: 1)
        let x = random([2, 3, 9, 7], seed: 5)
        let y = random([g.patchSize, 2 * g.positions], seed: 6)
        let ux = Tensor(zeros: y.shape)
        Im2col.unfold(g, batch: 2, input: x.data, col: ux.data)
        let fy = Tensor(zeros: x.shape)
        Im2col.fold(g, batch: 2, col: y.data, output: fy.data)
        XCTAssertEqual(ux.dot(y), x.dot(fy), accuracy: 1e-3 * abs(ux.dot(y)) + 1e-3)
    }

    func testViewsShareMemoryAndReshapeChecksCounts() throws {
        let t = try Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        let v = try t.reshaped([3, 2])
        v[0] = 10
        XCTAssertEqual(t[0], 10)
        XCTAssertEqual(t.slice(1..<2).values, [4, 5, 6])
        XCTAssertThrowsError(try t.reshaped([4, 2])) { error in
            XCTAssertEqual(error as? TensorError, .reshape(from: [2, 3], to: [4, 2]))
            XCTAssertTrue("\(error)".contains("[2, 3]"))
        }
        XCTAssertThrowsError(try Tensor(shape: [2, 2], values: [1, 2, 3]))
    }

    func testSeededGeneratorIsReproducible() {
        var a = SeededGenerator(seed: 42), b = SeededGenerator(seed: 42), c = SeededGenerator(seed: 43)
        let xa = (0..<8).map { _ in a.next() }, xb = (0..<8).map { _ in b.next() }, xc = (0..<8).map { _ in c.next() }
        XCTAssertEqual(xa, xb)
        XCTAssertNotEqual(xa, xc)
        var r = SeededGenerator(seed: 7)
        let normals = (0..<20000).map { _ in Double(r.nextNormal()) }
        let mean = normals.reduce(0, +) / Double(normals.count)
        let variance = normals.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(normals.count)
        XCTAssertEqual(mean, 0, accuracy: 0.03)
        XCTAssertEqual(variance, 1, accuracy: 0.05)
    }
}
