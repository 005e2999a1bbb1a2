// Antialiased bilinear resizing, the arithmetic of Pillow's
// `Image.resize((W, H), Image.BILINEAR)` (src/libImaging/Resample.c,
// ImagingResample): a separable convolution with the triangle filter, whose
// support widens by the scale factor when shrinking so every source pixel
// contributes. Weights are normalized to sum to 1, then rounded to 22-bit fixed
// point; the horizontal pass runs first and rounds to 8 bits, then the vertical
// pass. Same integers, same order, so the bytes equal Pillow's.

/// One output position's contributions along an axis: source indices
/// `first ..< first + weights.count` with their fixed-point weights.
struct ResampleWeights {
    /// First source index for each output index.
    var first: [Int]
    /// Number of source indices for each output index.
    var count: [Int]
    /// `ksize` weights per output index (unused ones 0), in 1 << `precisionBits` units.
    var weights: [Int32]
    /// Weights stored per output index.
    var ksize: Int

    /// Fractional bits of the fixed-point weights (Pillow's PRECISION_BITS, 32 − 8 − 2).
    static let precisionBits = 22

    /// The triangle filter's weights for resizing `inSize` samples to `outSize`.
    init(inSize: Int, outSize: Int) {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1)
        let support = 1.0 * filterScale  // the triangle's support is 1 at scale 1
        ksize = Int(support.rounded(.up)) * 2 + 1
        first = [Int](repeating: 0, count: outSize)
        count = [Int](repeating: 0, count: outSize)
        weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        for xx in 0..<outSize {
            let center = (Double(xx) + 0.5) * scale
            // C's (int) truncates toward zero, as Int(_:) does.
            let xmin = max(0, Int(center - support + 0.5))
            let xmax = min(inSize, Int(center + support + 0.5)) - xmin
            var sum = 0.0
            for x in 0..<max(0, xmax) {
                let w = triangle((Double(x + xmin) - center + 0.5) / filterScale)
                k[x] = w
                sum += w
            }
            for x in 0..<ksize {
                var w = x < xmax ? k[x] : 0
                if sum != 0 && x < xmax { w /= sum }
                let fixed = w * Double(1 << Self.precisionBits)
                weights[xx * ksize + x] = Int32(w < 0 ? fixed - 0.5 : fixed + 0.5)
            }
            first[xx] = xmin
            count[xx] = max(0, xmax)
        }
    }

    /// The bilinear (triangle) filter: 1 − |x| inside (−1, 1), else 0.
    private func triangle(_ x: Double) -> Double {
        let a = abs(x)
        return a < 1 ? 1 - a : 0
    }
}

/// Rounds a fixed-point sum (which started at one half) to a byte, clamping.
@inline(__always) private func clip8(_ sum: Int) -> UInt8 {
    UInt8(clamping: sum >> ResampleWeights.precisionBits)
}

/// `image` resized to `width`×`height` with Pillow's antialiased bilinear filter.
///
/// Equal to `Image.resize((width, height), Image.BILINEAR)` of Pillow (no
/// `reducing_gap`) byte for byte, for grey and RGB images alike. A dimension that
/// keeps its size is not filtered, as in Pillow.
/// - Parameters:
///   - image: the source pixels, H×W×C.
///   - width: the new width, at least 1.
///   - height: the new height, at least 1.
/// - Returns: a new image of the same channel count, H×W×C.
public func resizeAntialiased(_ image: DecodedImage, width: Int, height: Int) -> DecodedImage {
    precondition(width >= 1 && height >= 1, "resizeAntialiased: size \(width)×\(height) must be positive")
    let c = image.channels
    let vertical = ResampleWeights(inSize: image.height, outSize: height)
    var pixels = image.pixels
    var rowOffset = 0  // index of the source row that pixels' row 0 holds

    if width != image.width {
        // Only the rows the vertical pass reads: Pillow's ybox_first ..< ybox_last.
        let firstRow = vertical.first[0]
        let lastRow = vertical.first[height - 1] + vertical.count[height - 1]
        let horizontal = ResampleWeights(inSize: image.width, outSize: width)
        var out = [UInt8](repeating: 0, count: (lastRow - firstRow) * width * c)
        let half = 1 << (ResampleWeights.precisionBits - 1)
        let sw = image.width
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                horizontal.weights.withUnsafeBufferPointer { kk in
                    for y in firstRow..<lastRow {
                        let inRow = y * sw * c, outRow = (y - firstRow) * width * c
                        for xx in 0..<width {
                            let xmin = horizontal.first[xx], n = horizontal.count[xx], k = xx * horizontal.ksize
                            for ch in 0..<c {
                                var ss = half
                                for x in 0..<n { ss += Int(src[inRow + (xmin + x) * c + ch]) * Int(kk[k + x]) }
                                dst[outRow + xx * c + ch] = clip8(ss)
                            }
                        }
                    }
                }
            }
        }
        pixels = out
        rowOffset = firstRow
    }

    if height != image.height {
        var out = [UInt8](repeating: 0, count: height * width * c)
        let half = 1 << (ResampleWeights.precisionBits - 1)
        let rowLength = width * c
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                vertical.weights.withUnsafeBufferPointer { kk in
                    for yy in 0..<height {
                        let ymin = vertical.first[yy] - rowOffset, n = vertical.count[yy], k = yy * vertical.ksize
                        for i in 0..<rowLength {
                            var ss = half
                            for y in 0..<n { ss += Int(src[(ymin + y) * rowLength + i]) * Int(kk[k + y]) }
                            dst[yy * rowLength + i] = clip8(ss)
                        }
                    }
                }
            }
        }
        pixels = out
    }
    // With the height unchanged the vertical weights span every row, so the
    // horizontal pass produced exactly `height` rows.
    return DecodedImage(width: width, height: height, channels: c, pixels: pixels)
}
