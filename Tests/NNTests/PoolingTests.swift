import XCTest
import Tensor
@testable import NN

/// Max pooling's vectorized 2×2 path against the definition, on the inputs where a
/// shortcut would most likely differ: ties, NaNs, odd sizes (the last row and column
/// dropped in floor mode), and rows of every kind of block cover (3, 4, 5, 7, 8, 9 and
/// 14 outputs: scalar, one block, overlapping blocks).
final class PoolingTests: XCTestCase {
    /// PyTorch's rule, written out: scan the window in row-major order and take a value
    /// when it is greater than the best so far or is NaN.
    func naiveMaxPool(_ x: Tensor, kernel k: Int, stride s: Int) -> (values: [Float], argmax: [Int]) {
        let planes = x.shape[0] * x.shape[1], h = x.shape[2], w = x.shape[3]
        let oh = (h - k) / s + 1, ow = (w - k) / s + 1
        var values: [Float] = [], argmax: [Int] = []
        for p in 0..<planes {
            for y in 0..<oh {
                for xo in 0..<ow {
                    var at = y * s * w + xo * s
                    var best = x.data[p * h * w + at]
                    for ky in 0..<k {
                        for kx in 0..<k {
                            let i = (y * s + ky) * w + xo * s + kx
                            let v = x.data[p * h * w + i]
                            if v > best || v.isNaN { best = v; at = i }
                        }
                    }
                    values.append(best); argmax.append(p * h * w + at)
                }
            }
        }
        return (values, argmax)
    }

    func testTwoByTwoPathMatchesTheDefinitionWithTiesAndNaNs() throws {
        var rng = SeededGenerator(seed: 11)
        for shape in [[2, 3, 7, 9], [1, 1, 2, 2], [3, 2, 28, 28], [1, 4, 5, 6], [2, 2, 14, 14], [1, 2, 17, 16], [1, 1, 19, 19], [1, 1, 5, 11]] {
            let x = Tensor(zeros: shape)
            for i in 0..<x.count {
                // Few distinct values so that windows often tie; some NaNs.
                switch rng.next() % 10 {
                case 0: x.data[i] = .nan
                case 1, 2, 3: x.data[i] = 1
                default: x.data[i] = Float(Int(rng.next() % 5)) - 2
                }
            }
            let pool = MaxPool2d(kernelSize: 2)
            let out = try pool.forward(x, training: true)
            let expected = naiveMaxPool(x, kernel: 2, stride: 2)
            XCTAssertEqual(out.count, expected.values.count, "\(shape)")
            for i in 0..<out.count {
                let a = out.data[i], b = expected.values[i]
                XCTAssertTrue(a == b || (a.isNaN && b.isNaN), "\(shape) output \(i): \(a) vs \(b)")
            }
            // The argmax shows in the gradient: backward routes each output's gradient to it.
            let dOut = Tensor(zeros: out.shape)
            for i in 0..<dOut.count { dOut.data[i] = Float(i + 1) }
            let dIn = pool.backward(dOut)
            var routed = [Float](repeating: 0, count: x.count)
            for (o, i) in expected.argmax.enumerated() { routed[i] += Float(o + 1) }
            XCTAssertEqual((0..<dIn.count).map { dIn.data[$0] }, routed, "\(shape): gradients routed to other positions")
        }
    }
}
