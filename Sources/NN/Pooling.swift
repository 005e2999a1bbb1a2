import Tensor

/// Max pooling, PyTorch's `nn.MaxPool2d(kernel, stride)` (no padding, floor mode).
///
/// input (N, C, H, W) → output (N, C, OH, OW), OH = (H − kernel)/stride + 1.
/// Ties go to the first maximum in row-major order, as in PyTorch.
public final class MaxPool2d: Layer {
    public var path = "pool"
    public var needsInputGradient = true
    public let kernelSize: Int
    public let stride: Int
    /// Flat input index (within its image-channel plane) of each output's maximum.
    private var argmax: [Int32] = []
    private var inputShape: [Int] = []
    private var output = Workspace()
    private var dInput = Workspace()

    public init(kernelSize: Int, stride: Int? = nil) {
        precondition(kernelSize > 0)
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.rank == 4, input.shape[2] >= kernelSize, input.shape[3] >= kernelSize else {
            throw NNError.shape(layer: path, expected: ["N", "C", "≥\(kernelSize)", "≥\(kernelSize)"], actual: input.shape, what: "input")
        }
        inputShape = input.shape
        let planes = input.shape[0] * input.shape[1], h = input.shape[2], w = input.shape[3]
        let oh = (h - kernelSize) / stride + 1, ow = (w - kernelSize) / stride + 1
        let out = output.get([input.shape[0], input.shape[1], oh, ow])
        if argmax.count != out.count { argmax = Array(repeating: 0, count: out.count) }
        if kernelSize == 2 && stride == 2 {
            argmax.withUnsafeMutableBufferPointer { am in
                Self.forward2x2(input.data, out.data, am.baseAddress!, planes: planes, h: h, w: w, oh: oh, ow: ow)
            }
            return out
        }
        argmax.withUnsafeMutableBufferPointer { am in
            for p in 0..<planes {
                let src = input.data + p * h * w
                for y in 0..<oh {
                    for x in 0..<ow {
                        var best = (y * stride) * w + x * stride
                        var bestValue = src[best]
                        for ky in 0..<kernelSize {
                            let row = (y * stride + ky) * w + x * stride
                            for kx in 0..<kernelSize where src[row + kx] > bestValue || src[row + kx].isNaN {
                                best = row + kx; bestValue = src[best]
                            }
                        }
                        let o = (p * oh + y) * ow + x
                        out.data[o] = bestValue
                        am[o] = Int32(best)
                    }
                }
            }
        }
        return out
    }

    /// The 2×2, stride-2 window of most CNNs, vectorized along each output row: the same
    /// answer as the general loop (first maximum in row-major order; a NaN wins over numbers,
    /// the last NaN over earlier ones), with selects instead of branches — which of four
    /// activations is largest is unpredictable, and mispredicted branches cost more than the
    /// comparisons. A row is covered by blocks of 8 (or 4) outputs, the last block shifted
    /// back to end at the row's end (overlapping outputs are computed twice, identically);
    /// rows too short for a block take the scalar path.
    private static func forward2x2(_ src: UnsafeMutablePointer<Float>, _ dst: UnsafeMutablePointer<Float>,
                                   _ am: UnsafeMutablePointer<Int32>, planes: Int, h: Int, w: Int, oh: Int, ow: Int) {
        let lanes8 = SIMD8<Int32>(0, 2, 4, 6, 8, 10, 12, 14), lanes4 = SIMD4<Int32>(0, 2, 4, 6)
        // v != v: v is NaN.
        @inline(__always) func take(_ v: SIMD8<Float>, _ i: SIMD8<Int32>, _ best: inout SIMD8<Float>, _ at: inout SIMD8<Int32>) {
            let wins = (v .> best) .| (v .!= v)
            best.replace(with: v, where: wins)
            at.replace(with: i, where: wins)
        }
        @inline(__always) func take(_ v: SIMD4<Float>, _ i: SIMD4<Int32>, _ best: inout SIMD4<Float>, _ at: inout SIMD4<Int32>) {
            let wins = (v .> best) .| (v .!= v)
            best.replace(with: v, where: wins)
            at.replace(with: i, where: wins)
        }
        for p in 0..<planes {
            let plane = UnsafeRawPointer(src + p * h * w)
            for y in 0..<oh {
                let r0 = 2 * y * w, r1 = r0 + w
                let o = (p * oh + y) * ow
                if ow >= 8 {
                    var x0 = 0
                    while true {
                        let x = min(x0, ow - 8)
                        let top = plane.loadUnaligned(fromByteOffset: (r0 + 2 * x) * 4, as: SIMD16<Float>.self)
                        let bottom = plane.loadUnaligned(fromByteOffset: (r1 + 2 * x) * 4, as: SIMD16<Float>.self)
                        let ia = SIMD8<Int32>(repeating: Int32(r0 + 2 * x)) &+ lanes8
                        var best = top.evenHalf, at = ia
                        take(top.oddHalf, ia &+ 1, &best, &at)
                        take(bottom.evenHalf, ia &+ Int32(w), &best, &at)
                        take(bottom.oddHalf, ia &+ Int32(w + 1), &best, &at)
                        UnsafeMutableRawPointer(dst + o + x).storeBytes(of: best, as: SIMD8<Float>.self)
                        UnsafeMutableRawPointer(am + o + x).storeBytes(of: at, as: SIMD8<Int32>.self)
                        if x == ow - 8 { break }
                        x0 += 8
                    }
                } else if ow >= 4 {
                    var x0 = 0
                    while true {
                        let x = min(x0, ow - 4)
                        let top = plane.loadUnaligned(fromByteOffset: (r0 + 2 * x) * 4, as: SIMD8<Float>.self)
                        let bottom = plane.loadUnaligned(fromByteOffset: (r1 + 2 * x) * 4, as: SIMD8<Float>.self)
                        let ia = SIMD4<Int32>(repeating: Int32(r0 + 2 * x)) &+ lanes4
                        var best = top.evenHalf, at = ia
                        take(top.oddHalf, ia &+ 1, &best, &at)
                        take(bottom.evenHalf, ia &+ Int32(w), &best, &at)
                        take(bottom.oddHalf, ia &+ Int32(w + 1), &best, &at)
                        UnsafeMutableRawPointer(dst + o + x).storeBytes(of: best, as: SIMD4<Float>.self)
                        UnsafeMutableRawPointer(am + o + x).storeBytes(of: at, as: SIMD4<Int32>.self)
                        if x == ow - 4 { break }
                        x0 += 4
                    }
                } else {
                    let row = src + p * h * w
                    for x in 0..<ow {
                        var best = row[r0 + 2 * x], at = r0 + 2 * x
                        for i in [r0 + 2 * x + 1, r1 + 2 * x, r1 + 2 * x + 1] where row[i] > best || row[i].isNaN {
                            best = row[i]; at = i
                        }
                        dst[o + x] = best
                        am[o + x] = Int32(at)
                    }
                }
            }
        }
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let dIn = dInput.get(inputShape)
        dIn.zero()
        let hw = inputShape[2] * inputShape[3], outPlane = dOutput.count / max(inputShape[0] * inputShape[1], 1)
        argmax.withUnsafeBufferPointer { am in
            for o in 0..<dOutput.count {
                let plane = o / outPlane
                dIn.data[plane * hw + Int(am[o])] += dOutput.data[o]
            }
        }
        return dIn
    }

    public var state: [StateEntry] { [] }
}

/// Adaptive average pooling, PyTorch's `nn.AdaptiveAvgPool2d(outputSize)`.
///
/// input (N, C, H, W) → (N, C, S, S); output cell i averages input rows
/// floor(i·H/S) ..< ceil((i+1)·H/S) (and likewise for columns), as PyTorch does.
public final class AdaptiveAvgPool2d: Layer {
    public var path = "avgpool"
    public var needsInputGradient = true
    public let outputSize: Int
    private var inputShape: [Int] = []
    private var output = Workspace()
    private var dInput = Workspace()

    public init(outputSize: Int) {
        precondition(outputSize > 0)
        self.outputSize = outputSize
    }

    private func bins(_ n: Int) -> [(Int, Int)] {
        (0..<outputSize).map { i in (i * n / outputSize, ((i + 1) * n + outputSize - 1) / outputSize) }
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        try check(input, [nil, nil, nil, nil], "input")
        inputShape = input.shape
        let planes = input.shape[0] * input.shape[1], h = input.shape[2], w = input.shape[3], s = outputSize
        let out = output.get([input.shape[0], input.shape[1], s, s])
        let rb = bins(h), cb = bins(w)
        for p in 0..<planes {
            let src = input.data + p * h * w
            for (i, (y0, y1)) in rb.enumerated() {
                for (j, (x0, x1)) in cb.enumerated() {
                    var sum: Float = 0
                    for y in y0..<y1 { for x in x0..<x1 { sum += src[y * w + x] } }
                    out.data[(p * s + i) * s + j] = sum / Float((y1 - y0) * (x1 - x0))
                }
            }
        }
        return out
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let dIn = dInput.get(inputShape)
        dIn.zero()
        let planes = inputShape[0] * inputShape[1], h = inputShape[2], w = inputShape[3], s = outputSize
        let rb = bins(h), cb = bins(w)
        for p in 0..<planes {
            let dst = dIn.data + p * h * w
            for (i, (y0, y1)) in rb.enumerated() {
                for (j, (x0, x1)) in cb.enumerated() {
                    let g = dOutput.data[(p * s + i) * s + j] / Float((y1 - y0) * (x1 - x0))
                    for y in y0..<y1 { for x in x0..<x1 { dst[y * w + x] += g } }
                }
            }
        }
        return dIn
    }

    public var state: [StateEntry] { [] }
}
