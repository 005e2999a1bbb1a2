import XCTest
import Tensor
@testable import NN

/// Finite-difference checks of every layer's backward pass on random shapes
/// (odd sizes, batch 1, stride 2, padding 0), beside the PyTorch fixtures.
final class GradientCheckTests: XCTestCase {
    func random(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
        var rng = SeededGenerator(seed: seed)
        let t = Tensor(zeros: shape)
        t.fillNormal(std: scale, using: &rng)
        return t
    }

    /// Checks ∂L/∂input and ∂L/∂(each tensor in `params`) of L = Σ output·R by central differences.
    func check(_ layer: any Layer, input: Tensor, params: [(name: String, value: Tensor, grad: Tensor)] = [],
               training: Bool = true, h: Float = 1e-2, samples: Int = 24, label: String,
               file: StaticString = #filePath, line: UInt = #line) throws {
        layer.needsInputGradient = true
        let out = try layer.forward(input, training: training)
        let r = random(out.shape, seed: 99)
        for p in params { p.grad.zero() }
        let dIn = layer.backward(r).copy()
        let analyticParams = params.map { $0.grad.copy() }

        func loss() throws -> Double { try layer.forward(input, training: training).dot(r) }
        let base = try loss()
        func compare(_ x: Tensor, _ analytic: Tensor, _ what: String) throws {
            var rng = SeededGenerator(seed: 7)
            let indices = x.count <= samples ? Array(0..<x.count) : (0..<samples).map { _ in Int(rng.next() % UInt64(x.count)) }
            var checked = 0
            for i in indices {
                let saved = x[i]
                x[i] = saved + h; let plus = try loss()
                x[i] = saved - h; let minus = try loss()
                x[i] = saved
                let numeric = Float((plus - minus) / Double(2 * h))
                // A ReLU or max-pool switching inside [x − h, x + h] makes the one-sided slopes
                // disagree; such a point has no derivative to compare, so it is skipped.
                let right = Float((plus - base) / Double(h)), left = Float((base - minus) / Double(h))
                if abs(right - left) > 0.05 * max(1, abs(numeric)) { continue }
                checked += 1
                let a = analytic[i]
                if !(abs(numeric - a) <= 2e-3 + 3e-2 * max(abs(a), abs(numeric))) {
                    XCTFail("\(label) \(what)[\(i)]: analytic \(a), numeric \(numeric)", file: file, line: line)
                    return
                }
            }
            XCTAssertGreaterThanOrEqual(checked * 2, indices.count, "\(label) \(what): too many points at a kink", file: file, line: line)
        }
        try compare(input, dIn, "input")
        for (p, a) in zip(params, analyticParams) { try compare(p.value, a, p.name) }
    }

    func testConv2dOnOddShapesStridesAndPaddings() throws {
        let cases: [(n: Int, c: Int, h: Int, w: Int, o: Int, k: Int, s: Int, p: Int, bias: Bool)] = [
            (1, 3, 7, 5, 2, 3, 2, 0, true), (2, 2, 6, 6, 3, 5, 1, 2, false), (1, 1, 9, 9, 4, 1, 1, 0, true), (3, 4, 5, 7, 2, 3, 2, 1, true),
        ]
        for (i, t) in cases.enumerated() {
            let conv = Conv2d(inputChannels: t.c, outputChannels: t.o, kernelSize: t.k, stride: t.s, padding: t.p, bias: t.bias, seed: UInt64(i))
            var params = [("weight", conv.weight, conv.dWeight)]
            if let b = conv.bias, let db = conv.dBias { params.append(("bias", b, db)) }
            try check(conv, input: random([t.n, t.c, t.h, t.w], seed: UInt64(i)), params: params, label: "conv \(t)")
        }
    }

    func testWSConv2dIncludingTheClampedDenominator() throws {
        for (i, gamma) in [Float(1), WSConv2d.reluGamma].enumerated() {
            let conv = WSConv2d(inputChannels: 3, outputChannels: 4, kernelSize: 3, stride: 2, padding: 0, gamma: gamma, seed: UInt64(i))
            conv.gain.assign(from: random([4], seed: 3))
            try check(conv, input: random([1, 3, 7, 6], seed: 4), params: [("weight", conv.weight, conv.dWeight), ("gain", conv.gain, conv.dGain), ("bias", conv.bias!, conv.dBias!)],
                      h: 1e-3, label: "wsconv γ=\(gamma)")
        }
        // A channel whose weights are almost constant: N·s² < ε, the clamped branch.
        let conv = WSConv2d(inputChannels: 2, outputChannels: 2, kernelSize: 3, padding: 1, seed: 9)
        for j in 0..<18 { conv.weight[j] = 0.5 + Float(j % 3) * 1e-4 }
        try check(conv, input: random([2, 2, 4, 4], seed: 5), params: [("weight", conv.weight, conv.dWeight), ("gain", conv.gain, conv.dGain)],
                  h: 1e-3, label: "wsconv clamped")
    }

    func testNormalizationLayers() throws {
        let bn2 = BatchNorm2d(features: 3)
        bn2.weight.assign(from: random([3], seed: 1)); bn2.bias.assign(from: random([3], seed: 2))
        try check(bn2, input: random([2, 3, 3, 5], seed: 3), params: [("weight", bn2.weight, bn2.dWeight), ("bias", bn2.bias, bn2.dBias)], label: "bn2d train")
        try check(bn2, input: random([1, 3, 2, 3], seed: 4), params: [("weight", bn2.weight, bn2.dWeight)], training: false, label: "bn2d eval batch 1")
        let bn1 = BatchNorm1d(features: 5)
        try check(bn1, input: random([3, 5], seed: 5), params: [("weight", bn1.weight, bn1.dWeight), ("bias", bn1.bias, bn1.dBias)], label: "bn1d")
        let gn = GroupNorm(groups: 3, channels: 6)
        gn.weight.assign(from: random([6], seed: 6))
        try check(gn, input: random([1, 6, 3, 3], seed: 7), params: [("weight", gn.weight, gn.dWeight), ("bias", gn.bias, gn.dBias)], label: "groupnorm")
        try check(gn, input: random([2, 6], seed: 8), params: [("weight", gn.weight, gn.dWeight)], label: "groupnorm on features")
        let ln = LayerNorm(normalizedShape: [2, 3, 3])
        ln.weight.assign(from: random([2, 3, 3], seed: 9))
        try check(ln, input: random([3, 2, 3, 3], seed: 10), params: [("weight", ln.weight, ln.dWeight), ("bias", ln.bias, ln.dBias)], label: "layernorm")
    }

    func testLinearPoolingActivationsAndDropout() throws {
        let fc = Linear(inputFeatures: 7, outputFeatures: 3, seed: 1)
        try check(fc, input: random([1, 7], seed: 2), params: [("weight", fc.weight, fc.dWeight), ("bias", fc.bias!, fc.dBias!)], label: "linear batch 1")
        try check(MaxPool2d(kernelSize: 3, stride: 2), input: random([2, 2, 7, 9], seed: 3), h: 1e-3, label: "maxpool 3/2")
        try check(MaxPool2d(kernelSize: 2), input: random([1, 3, 5, 5], seed: 4), h: 1e-3, label: "maxpool 2")
        try check(AdaptiveAvgPool2d(outputSize: 3), input: random([2, 2, 7, 5], seed: 5), label: "adaptive avg pool")
        try check(ReLU(), input: random([2, 11], seed: 6), h: 1e-3, label: "relu")
        try check(Flatten(), input: random([2, 2, 3, 3], seed: 7), label: "flatten")
        // Dropout in evaluation is the identity; in training its mask changes per call, so check it by its definition.
        let drop = Dropout(probability: 0.5, seed: 3)
        let x = random([4, 50], seed: 8)
        XCTAssertEqual(try drop.forward(x, training: false).values, x.values)
        let y = try drop.forward(x, training: true)
        let zeros = (0..<y.count).filter { y[$0] == 0 }.count
        XCTAssertTrue(zeros > 60 && zeros < 140, "dropout zeroed \(zeros) of 200")
        for i in 0..<y.count where y[i] != 0 { XCTAssertEqual(y[i], 2 * x[i], accuracy: 1e-6) }
        let g = drop.backward(random([4, 50], seed: 9))
        for i in 0..<y.count { XCTAssertEqual(g[i] == 0, y[i] == 0) }
    }

    /// Residual blocks (with a projection shortcut and with the identity), the one composite layer
    /// with two paths; whole models are checked against PyTorch by the digit_cnn fixtures.
    func testResidualBlocks() throws {
        for (i, projection) in [true, false].enumerated() {
            for norm in [Norm.batch, .none] {
                let out = projection ? 6 : 4, stride = projection ? 2 : 1
                func conv(_ c: Int, _ o: Int, _ k: Int, _ s: Int, _ p: Int, _ seed: UInt64) -> any Layer {
                    norm == .none ? WSConv2d(inputChannels: c, outputChannels: o, kernelSize: k, stride: s, padding: p, seed: seed)
                                  : Conv2d(inputChannels: c, outputChannels: o, kernelSize: k, stride: s, padding: p, seed: seed)
                }
                let body = Sequential()
                body.append(conv(4, out, 3, stride, 1, 1), name: "conv1")
                if norm == .batch { body.append(BatchNorm2d(features: out), name: "bn1") }
                body.append(ReLU())
                body.append(conv(out, out, 3, 1, 1, 2), name: "conv2")
                if norm == .batch { body.append(BatchNorm2d(features: out), name: "bn2") }
                var shortcut: Sequential?
                if projection {
                    let s = Sequential()
                    s.append(conv(4, out, 1, stride, 0, 3), name: "0")
                    shortcut = s
                }
                let block = ResidualBlock(body: body, shortcut: shortcut)
                let ps = block.state.filter { $0.kind == .parameter }.map { ($0.name, $0.value, $0.gradient!) }
                XCTAssertEqual(ps.contains { $0.0 == "shortcut.0.weight" }, projection)
                try check(block, input: random([2, 4, 5, 5], seed: UInt64(10 + i)), params: ps, h: 1e-3, samples: 10,
                          label: "residual block projection=\(projection) norm=\(norm)")
            }
        }
    }
}
