/// Unfolding image patches into columns (im2col) and folding them back (col2im),
/// the kernels that turn a convolution into one matrix product.
///
/// Letters: N batch, C channels, H×W input, KH×KW kernel, S stride, P padding,
/// OH×OW output (OH = (H + 2P − KH)/S + 1), L = OH·OW positions per image.
/// The column matrix is (C·KH·KW) × (N·L): row r = (c·KH + kh)·KW + kw,
/// column n·L + oh·OW + ow. Batching all images into one matrix makes one large
/// GEMM per layer instead of N small ones.
public struct ConvGeometry: Equatable, Sendable {
    public var channels, height, width, kernelH, kernelW, stride, padding: Int
    public init(channels: Int, height: Int, width: Int, kernelH: Int, kernelW: Int, stride: Int, padding: Int) {
        self.channels = channels; self.height = height; self.width = width
        self.kernelH = kernelH; self.kernelW = kernelW; self.stride = stride; self.padding = padding
    }
    public var outHeight: Int { (height + 2 * padding - kernelH) / stride + 1 }
    public var outWidth: Int { (width + 2 * padding - kernelW) / stride + 1 }
    /// Rows of the column matrix: C·KH·KW.
    public var patchSize: Int { channels * kernelH * kernelW }
    /// Output positions per image: OH·OW.
    public var positions: Int { outHeight * outWidth }
}

public enum Im2col {
    /// Fills `col` ((C·KH·KW) × (N·L)) from `input` (N, C, H, W); padding reads as zero.
    public static func unfold(_ g: ConvGeometry, batch n: Int, input: UnsafePointer<Float>, col: UnsafeMutablePointer<Float>) {
        let oh = g.outHeight, ow = g.outWidth, l = oh * ow, hw = g.height * g.width
        let rowLength = n * l
        for c in 0..<g.channels {
            for kh in 0..<g.kernelH {
                for kw in 0..<g.kernelW {
                    let row = col + ((c * g.kernelH + kh) * g.kernelW + kw) * rowLength
                    // Output columns ow whose input column iw = ow·S − P + kw is inside [0, W).
                    let owStart = max(0, (g.padding - kw + g.stride - 1) / g.stride)
                    let owEnd = min(ow, (g.width + g.padding - kw + g.stride - 1) / g.stride)
                    for img in 0..<n {
                        let src = input + (img * g.channels + c) * hw
                        for y in 0..<oh {
                            let dst = row + img * l + y * ow
                            let ih = y * g.stride - g.padding + kh
                            if ih < 0 || ih >= g.height || owStart >= owEnd {
                                dst.update(repeating: 0, count: ow)
                                continue
                            }
                            if owStart > 0 { dst.update(repeating: 0, count: owStart) }
                            if owEnd < ow { (dst + owEnd).update(repeating: 0, count: ow - owEnd) }
                            let srcRow = src + ih * g.width - g.padding + kw
                            if g.stride == 1 {
                                (dst + owStart).update(from: srcRow + owStart, count: owEnd - owStart)
                            } else {
                                var x = owStart
                                while x < owEnd { dst[x] = srcRow[x * g.stride]; x += 1 }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Adds every column entry of `col` back into its input position of `output`
    /// (N, C, H, W): the transpose of `unfold`. `output` is accumulated into, not cleared.
    public static func fold(_ g: ConvGeometry, batch n: Int, col: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>) {
        let oh = g.outHeight, ow = g.outWidth, l = oh * ow, hw = g.height * g.width
        let rowLength = n * l
        for c in 0..<g.channels {
            for kh in 0..<g.kernelH {
                for kw in 0..<g.kernelW {
                    let row = col + ((c * g.kernelH + kh) * g.kernelW + kw) * rowLength
                    let owStart = max(0, (g.padding - kw + g.stride - 1) / g.stride)
                    let owEnd = min(ow, (g.width + g.padding - kw + g.stride - 1) / g.stride)
                    if owStart >= owEnd { continue }
                    for img in 0..<n {
                        let dstImage = output + (img * g.channels + c) * hw
                        for y in 0..<oh {
                            let ih = y * g.stride - g.padding + kh
                            if ih < 0 || ih >= g.height { continue }
                            let src = row + img * l + y * ow
                            let dstRow = dstImage + ih * g.width - g.padding + kw
                            var x = owStart
                            while x < owEnd { dstRow[x * g.stride] += src[x]; x += 1 }
                        }
                    }
                }
            }
        }
    }
}

extension Reference {
    /// Direct convolution: output (N, O, OH, OW) = Σ weight (O, C, KH, KW) · input (N, C, H, W) + bias.
    /// What im2col followed by GEMM must agree with.
    public static func conv2d(_ g: ConvGeometry, batch n: Int, outChannels o: Int,
                              input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                              output: UnsafeMutablePointer<Float>) {
        let oh = g.outHeight, ow = g.outWidth
        for img in 0..<n {
            for oc in 0..<o {
                for y in 0..<oh {
                    for x in 0..<ow {
                        var s = Double(bias?[oc] ?? 0)
                        for c in 0..<g.channels {
                            for kh in 0..<g.kernelH {
                                let ih = y * g.stride - g.padding + kh
                                if ih < 0 || ih >= g.height { continue }
                                for kw in 0..<g.kernelW {
                                    let iw = x * g.stride - g.padding + kw
                                    if iw < 0 || iw >= g.width { continue }
                                    s += Double(input[((img * g.channels + c) * g.height + ih) * g.width + iw])
                                        * Double(weight[((oc * g.channels + c) * g.kernelH + kh) * g.kernelW + kw])
                                }
                            }
                        }
                        output[((img * o + oc) * oh + y) * ow + x] = Float(s)
                    }
                }
            }
        }
    }
}
