// Bringing images of any stored layout to the model's input: channel expansion
// (grey → 3 channels, as the FedBN pipeline does) and bilinear resizing.

/// The channel count and size a model expects, e.g. 3×28×28 for the digit models.
public struct ImageShape: Sendable, Equatable, CustomStringConvertible {
    /// Channels (1 or 3).
    public var channels: Int
    /// Height in pixels.
    public var height: Int
    /// Width in pixels.
    public var width: Int

    public init(channels: Int, height: Int, width: Int) {
        precondition(channels >= 1 && height >= 1 && width >= 1, "ImageShape: sizes must be positive")
        self.channels = channels
        self.height = height
        self.width = width
    }

    /// 3×28×28, the FedBN digit pipeline's input (and `digits5`'s image size).
    public static let digits = ImageShape(channels: 3, height: 28, width: 28)

    public var description: String { "\(channels)×\(height)×\(width)" }
}

/// Converts N images stored as bytes, N×C×H×W, to `target`: grey is repeated to 3
/// channels, colour is reduced to grey by luminance when 1 channel is wanted, and
/// planes are resized with bilinear interpolation.
func conform(_ pixels: [UInt8], count n: Int, channels c: Int, height h: Int, width w: Int,
             to target: ImageShape?) -> (pixels: [UInt8], shape: ImageShape) {
    guard let target else { return (pixels, ImageShape(channels: c, height: h, width: w)) }
    if c == target.channels && h == target.height && w == target.width { return (pixels, target) }
    let tc = target.channels, th = target.height, tw = target.width
    let srcPlane = h * w, dstPlane = th * tw
    var out = [UInt8](repeating: 0, count: n * tc * dstPlane)
    if c == 1 && h == th && w == tw {  // grey at the right size: repeat each plane
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                for i in 0..<n {
                    for ch in 0..<tc {
                        dst.baseAddress!.advanced(by: (i * tc + ch) * dstPlane)
                            .update(from: src.baseAddress!.advanced(by: i * srcPlane), count: srcPlane)
                    }
                }
            }
        }
        return (out, target)
    }
    var plane = [Float](repeating: 0, count: srcPlane)
    for i in 0..<n {
        let base = i * c * srcPlane
        var resized: [[UInt8]] = []
        // Source planes for each target channel.
        func sourcePlane(_ ch: Int) -> [Float] {
            if c == tc { return (0..<srcPlane).map { Float(pixels[base + ch * srcPlane + $0]) } }
            if c == 1 { return (0..<srcPlane).map { Float(pixels[base + $0]) } }
            // Colour to grey (ITU-R 601 luma), channel count reduced to 1.
            for k in 0..<srcPlane {
                plane[k] = 0.299 * Float(pixels[base + k]) + 0.587 * Float(pixels[base + srcPlane + k])
                    + 0.114 * Float(pixels[base + 2 * srcPlane + k])
            }
            return plane
        }
        if c == 1 && tc > 1 {
            // Resize once, then repeat.
            let r = resizeBilinear(sourcePlane(0), width: w, height: h, toWidth: tw, height: th)
            let bytes = r.map { UInt8(min(max($0 + 0.5, 0), 255)) }
            resized = [[UInt8]](repeating: bytes, count: tc)
        } else {
            for ch in 0..<tc {
                let r = resizeBilinear(sourcePlane(ch), width: w, height: h, toWidth: tw, height: th)
                resized.append(r.map { UInt8(min(max($0 + 0.5, 0), 255)) })
            }
        }
        for ch in 0..<tc {
            let o = (i * tc + ch) * dstPlane
            for k in 0..<dstPlane { out[o + k] = resized[ch][k] }
        }
    }
    return (out, target)
}
