// Small raster helpers behind the digits generator and the readers: anti-aliased
// round-pen strokes, separable blur, bilinear resize. Planes are H×W Float arrays.

/// A single-channel H×W coverage plane with values in [0, 1].
struct Canvas {
    let width: Int
    let height: Int
    var values: [Float]

    init(width: Int, height: Int) {
        self.width = width
        self.height = height
        values = [Float](repeating: 0, count: width * height)
    }

    /// Draws a polyline with a round pen of diameter `penWidth` pixels. Coverage
    /// falls linearly from 1 to 0 over `softness` pixels at the pen's edge
    /// (anti-aliasing); overlapping strokes keep the maximum coverage.
    mutating func stroke(_ points: [Point], penWidth: Float, softness: Float = 1) {
        guard !points.isEmpty else { return }
        if points.count == 1 { segment(points[0], points[0], penWidth: penWidth, softness: softness); return }
        for k in 1..<points.count {
            segment(points[k - 1], points[k], penWidth: penWidth, softness: softness)
        }
    }

    /// One capsule from `a` to `b` (pixel coordinates; pixel (x, y) has its centre at
    /// (x + 0.5, y + 0.5)).
    mutating func segment(_ a: Point, _ b: Point, penWidth: Float, softness: Float) {
        let r = penWidth / 2
        let reach = r + softness / 2 + 1
        let x0 = max(0, Int((min(a.x, b.x) - reach).rounded(.down)))
        let x1 = min(width - 1, Int((max(a.x, b.x) + reach).rounded(.up)))
        let y0 = max(0, Int((min(a.y, b.y) - reach).rounded(.down)))
        let y1 = min(height - 1, Int((max(a.y, b.y) + reach).rounded(.up)))
        guard x0 <= x1, y0 <= y1 else { return }
        let ab = b - a
        let len2 = max((ab * ab).sum(), 1e-12)
        let invSoft = 1 / max(softness, 1e-3)
        let w = width
        values.withUnsafeMutableBufferPointer { v in
            for y in y0...y1 {
                let py = Float(y) + 0.5
                for x in x0...x1 {
                    let p = Point(Float(x) + 0.5, py)
                    let ap = p - a
                    let t = min(max((ap * ab).sum() / len2, 0), 1)
                    let d = p - (a + t * ab)
                    let dist = (d * d).sum().squareRoot()
                    let cov = min(max((r + softness / 2 - dist) * invSoft, 0), 1)
                    if cov > v[y * w + x] { v[y * w + x] = cov }
                }
            }
        }
    }
}

/// Blurs an H×W plane in place with a separable Gaussian of standard deviation
/// `sigma` pixels (edges clamp).
func gaussianBlur(_ plane: inout [Float], width: Int, height: Int, sigma: Float) {
    guard sigma > 0.05 else { return }
    let radius = max(1, Int((2.5 * sigma).rounded(.up)))
    var kernel = (-radius...radius).map { k -> Float in
        let x = Float(k)
        return pexp(-x * x / (2 * sigma * sigma))
    }
    let s = kernel.reduce(0, +)
    kernel = kernel.map { $0 / s }
    var tmp = [Float](repeating: 0, count: plane.count)
    for y in 0..<height {
        for x in 0..<width {
            var acc: Float = 0
            for k in -radius...radius {
                let xx = min(max(x + k, 0), width - 1)
                acc += kernel[k + radius] * plane[y * width + xx]
            }
            tmp[y * width + x] = acc
        }
    }
    for y in 0..<height {
        for x in 0..<width {
            var acc: Float = 0
            for k in -radius...radius {
                let yy = min(max(y + k, 0), height - 1)
                acc += kernel[k + radius] * tmp[yy * width + x]
            }
            plane[y * width + x] = acc
        }
    }
}

/// Resizes an H×W plane with bilinear interpolation, pixel centres aligned
/// (`align_corners = false`, as PyTorch and PIL without antialiasing).
func resizeBilinear(_ src: [Float], width sw: Int, height sh: Int,
                    toWidth dw: Int, height dh: Int) -> [Float] {
    if sw == dw && sh == dh { return src }
    var dst = [Float](repeating: 0, count: dw * dh)
    let sx = Float(sw) / Float(dw), sy = Float(sh) / Float(dh)
    src.withUnsafeBufferPointer { s in
        for y in 0..<dh {
            let fy = max(0, (Float(y) + 0.5) * sy - 0.5)
            let y0 = min(Int(fy), sh - 1), y1 = min(y0 + 1, sh - 1)
            let wy = fy - Float(y0)
            for x in 0..<dw {
                let fx = max(0, (Float(x) + 0.5) * sx - 0.5)
                let x0 = min(Int(fx), sw - 1), x1 = min(x0 + 1, sw - 1)
                let wx = fx - Float(x0)
                let top = s[y0 * sw + x0] * (1 - wx) + s[y0 * sw + x1] * wx
                let bottom = s[y1 * sw + x0] * (1 - wx) + s[y1 * sw + x1] * wx
                dst[y * dw + x] = top * (1 - wy) + bottom * wy
            }
        }
    }
    return dst
}

import Foundation
