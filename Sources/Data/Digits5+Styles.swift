// The five drawing styles of digits5. Each style is a short recipe: where and how
// large the digit is, which pen, which colours, and what happens to the image after
// drawing (upscaling, blur, texture inversion).

import Foundation
import Tensor

/// Where a glyph lands and how it is distorted.
struct Pose {
    var center: Point
    var height: Float
    var aspect: Float
    /// Horizontal shear: positive leans the top to the right.
    var slant: Float
    /// Rotation in radians, clockwise on screen.
    var rotation: Float
    /// Amplitude of the smooth handwriting warp, in glyph-box units.
    var jitter: Float
}

/// Draws one digit image at a time into reusable buffers.
struct Painter {
    static let side = Digits5.imageSide
    /// Output, 3×28×28, values in [0, 1].
    var rgb = [Float](repeating: 0, count: 3 * side * side)
    var canvas = Canvas(width: side, height: side)
    var scratch = [Float](repeating: 0, count: 3 * side * side)

    mutating func draw(domain: Digits5.Domain, digit: Int, rng: inout SeededGenerator) {
        switch domain {
        case .mnist: drawMNIST(digit: digit, rng: &rng, textured: false)
        case .mnistm: drawMNIST(digit: digit, rng: &rng, textured: true)
        case .usps: drawUSPS(digit: digit, rng: &rng)
        case .svhn: drawSVHN(digit: digit, rng: &rng)
        case .synth: drawSynth(digit: digit, rng: &rng)
        }
    }

    // MARK: domains

    /// Handwriting, grey on black; with `textured`, MNIST-M: |texture − stroke|.
    mutating func drawMNIST(digit: Int, rng: inout SeededGenerator, textured: Bool) {
        let s = Float(Painter.side)
        canvas = Canvas(width: Painter.side, height: Painter.side)
        let pose = Pose(center: Point(s / 2 + Float(rng.nextGaussian()) * 0.8, s / 2 + Float(rng.nextGaussian()) * 0.8),
                        height: rng.uniform(16, 21), aspect: rng.uniform(0.5, 0.9),
                        slant: rng.uniform(-0.2, 0.45), rotation: rng.uniform(-0.22, 0.22), jitter: rng.uniform(0.02, 0.07))
        let glyph = pick(Glyphs.handwritten[digit], &rng)
        let pen = rng.uniform(2.2, 3.8)
        for stroke in place(glyph, pose, &rng) { canvas.stroke(stroke, penWidth: pen, softness: 1.5) }
        let gain = rng.uniform(1.0, 1.25)
        let plane = Painter.side * Painter.side
        if !textured {
            for k in 0..<plane {
                let v = min(1, canvas.values[k] * gain)
                rgb[k] = v; rgb[plane + k] = v; rgb[2 * plane + k] = v
            }
            return
        }
        texture(&rng)
        for k in 0..<plane {
            let v = min(1, canvas.values[k] * gain)
            for c in 0..<3 { rgb[c * plane + k] = abs(rgb[c * plane + k] - v) }
        }
    }

    /// Drawn at 16×16 with thick strokes filling the frame, then upscaled to 28×28.
    mutating func drawUSPS(digit: Int, rng: inout SeededGenerator) {
        let small = 16
        var c16 = Canvas(width: small, height: small)
        let pose = Pose(center: Point(8 + rng.uniform(-0.8, 0.8), 8 + rng.uniform(-0.8, 0.8)),
                        height: rng.uniform(12, 15.5), aspect: rng.uniform(0.6, 1.0),
                        slant: rng.uniform(-0.35, 0.35), rotation: rng.uniform(-0.18, 0.18), jitter: rng.uniform(0.02, 0.07))
        let glyph = pick(Glyphs.handwritten[digit], &rng)
        let pen = rng.uniform(1.6, 3.2)
        for stroke in place(glyph, pose, &rng) { c16.stroke(stroke, penWidth: pen, softness: 1.0) }
        let gain = rng.uniform(0.6, 1.0)
        let up = resizeBilinear(c16.values, width: small, height: small, toWidth: Painter.side, height: Painter.side)
        let plane = Painter.side * Painter.side
        for k in 0..<plane {
            let v = min(1, up[k] * gain)
            rgb[k] = v; rgb[plane + k] = v; rgb[2 * plane + k] = v
        }
    }

    /// House-number crops: printed digit with neighbours at the edges, colour,
    /// shading, noise, low resolution and blur.
    mutating func drawSVHN(digit: Int, rng: inout SeededGenerator) {
        let s = Float(Painter.side)
        canvas = Canvas(width: Painter.side, height: Painter.side)
        let height = rng.uniform(15, 23)
        let aspect = rng.uniform(0.5, 0.7)
        let pen = rng.uniform(2.2, 4.0)
        let pose = Pose(center: Point(s / 2 + rng.uniform(-1, 1), s / 2 + rng.uniform(-1.5, 1.5)),
                        height: height, aspect: aspect, slant: rng.uniform(-0.15, 0.15),
                        rotation: rng.uniform(-0.1, 0.1), jitter: 0.01)
        for stroke in place(pick(Glyphs.printed[digit], &rng), pose, &rng) { canvas.stroke(stroke, penWidth: pen, softness: 1) }
        // Neighbouring digits of the same number, cut off by the frame.
        let step = height * aspect + pen + rng.uniform(2, 5)
        for side: Float in [-1, 1] where rng.nextUniform() < 0.8 {
            var p = pose
            p.center.x += side * step
            p.center.y += rng.uniform(-0.7, 0.7)
            for stroke in place(pick(Glyphs.printed[rng.nextInt(below: 10)], &rng), p, &rng) {
                canvas.stroke(stroke, penWidth: pen, softness: 1)
            }
        }
        var (bg, fg) = contrastingColours(&rng, minContrast: 0.3)
        // House plates are mostly muted: pull both colours towards their grey.
        let saturation = rng.uniform(0.1, 0.75)
        bg = mute(bg, saturation)
        fg = mute(fg, saturation)
        compose(bg: bg, fg: fg, bg2: nil)
        // Uneven illumination: a linear ramp and a soft spot.
        let angle = rng.uniform(0, 2 * .pi)
        let ramp = rng.uniform(0, 0.45)
        let spot = Point(rng.uniform(0, s), rng.uniform(0, s))
        let spotGain = rng.uniform(-0.25, 0.35)
        let plane = Painter.side * Painter.side
        let ca = pcos(angle), sa = psin(angle)
        // The spot is a Gaussian of radius 8 px, separable in x and y.
        let gx = (0..<Painter.side).map { x in pexp(-(Float(x) - spot.x) * (Float(x) - spot.x) / 128) }
        let gy = (0..<Painter.side).map { y in pexp(-(Float(y) - spot.y) * (Float(y) - spot.y) / 128) }
        for y in 0..<Painter.side {
            for x in 0..<Painter.side {
                let u = (Float(x) - s / 2) / s, v = (Float(y) - s / 2) / s
                let light = 1 + ramp * (u * ca + v * sa) + spotGain * gx[x] * gy[y]
                for c in 0..<3 { rgb[c * plane + y * Painter.side + x] *= light }
            }
        }
        let noise = rng.uniform(0.01, 0.04)
        for k in 0..<(3 * plane) { rgb[k] += noise * 3.464 * (rng.nextUniform() - 0.5) }  // uniform, variance noise²
        // Low resolution and blur: one precomputed separable operator per choice.
        let op = degradeOperators[rng.nextInt(below: 7)][rng.nextInt(below: 6)]
        op.apply(&rgb, planes: 3, side: Painter.side, scratch: &scratch)
        for k in 0..<(3 * plane) { rgb[k] = min(max(rgb[k], 0), 1) }
    }

    /// Synthetic printed digits: varied weight, size, colours and backgrounds, small
    /// rotation, sharp edges.
    mutating func drawSynth(digit: Int, rng: inout SeededGenerator) {
        let s = Float(Painter.side)
        canvas = Canvas(width: Painter.side, height: Painter.side)
        let height = rng.uniform(12, 22)
        let aspect = rng.uniform(0.5, 0.85)
        let pen = rng.uniform(1.4, 4.6)
        let pose = Pose(center: Point(s / 2 + rng.uniform(-2.5, 2.5), s / 2 + rng.uniform(-2.5, 2.5)),
                        height: height, aspect: aspect, slant: rng.uniform(-0.2, 0.2),
                        rotation: rng.uniform(-0.2, 0.2), jitter: 0)
        for stroke in place(pick(Glyphs.printed[digit], &rng), pose, &rng) { canvas.stroke(stroke, penWidth: pen, softness: 0.8) }
        if rng.nextUniform() < 0.35 {  // a neighbour, as in multi-digit renderings
            var p = pose
            let side: Float = rng.nextUniform() < 0.5 ? -1 : 1
            p.center.x += side * (height * aspect + pen + rng.uniform(2, 5))
            for stroke in place(pick(Glyphs.printed[rng.nextInt(below: 10)], &rng), p, &rng) {
                canvas.stroke(stroke, penWidth: pen, softness: 0.8)
            }
        }
        let (bg, fg) = contrastingColours(&rng, minContrast: 0.3)
        var bg2: SIMD3<Float>? = nil
        if rng.nextUniform() < 0.5 {
            bg2 = bg + SIMD3(rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25))
        }
        compose(bg: bg, fg: fg, bg2: bg2, gradientAngle: rng.uniform(0, 2 * .pi))
        let plane = 3 * Painter.side * Painter.side
        for k in 0..<plane { rgb[k] = min(max(rgb[k], 0), 1) }
    }

    // MARK: pieces

    func pick(_ variants: [Glyph], _ rng: inout SeededGenerator) -> Glyph {
        variants[rng.nextInt(below: variants.count)]
    }

    /// Maps a glyph's unit-box strokes to pixel coordinates: smooth random warp,
    /// box scaling, slant, rotation, translation.
    func place(_ glyph: Glyph, _ pose: Pose, _ rng: inout SeededGenerator) -> [[Point]] {
        // Two low-frequency sinusoids per axis make a smooth displacement field.
        var waves: [(Point, Float, Float, Int)] = []
        if pose.jitter > 0 {
            for axis in 0..<2 {
                for _ in 0..<2 {
                    waves.append((Point(rng.uniform(-5, 5), rng.uniform(-5, 5)), rng.uniform(0, 2 * .pi),
                                  pose.jitter * rng.uniform(0.5, 1), axis))
                }
            }
        }
        let w = pose.height * pose.aspect, h = pose.height
        let cr = pcos(pose.rotation), sr = psin(pose.rotation)
        return glyph.strokes.map { stroke in
            stroke.map { p in
                var q = p
                for (f, phase, amp, axis) in waves {
                    q[axis] += amp * psin((f * p).sum() + phase)
                }
                var x = (q.x - 0.5) * w, y = (q.y - 0.5) * h
                x -= pose.slant * y
                let rx = cr * x - sr * y, ry = sr * x + cr * y
                return Point(pose.center.x + rx, pose.center.y + ry)
            }
        }
    }

    /// A background and a foreground colour whose luminances differ by at least
    /// `minContrast`.
    func contrastingColours(_ rng: inout SeededGenerator, minContrast: Float) -> (SIMD3<Float>, SIMD3<Float>) {
        func colour() -> SIMD3<Float> { SIMD3(rng.nextUniform(), rng.nextUniform(), rng.nextUniform()) }
        func luma(_ c: SIMD3<Float>) -> Float { 0.299 * c.x + 0.587 * c.y + 0.114 * c.z }
        let bg = colour()
        var fg = colour()
        var tries = 0
        while abs(luma(fg) - luma(bg)) < minContrast && tries < 20 { fg = colour(); tries += 1 }
        if abs(luma(fg) - luma(bg)) < minContrast { fg = luma(bg) > 0.5 ? fg * 0.2 : fg * 0.3 + 0.7 }
        return (bg, fg)
    }

    func mute(_ c: SIMD3<Float>, _ saturation: Float) -> SIMD3<Float> {
        let l = 0.299 * c.x + 0.587 * c.y + 0.114 * c.z
        return SIMD3(repeating: l) + (c - SIMD3(repeating: l)) * saturation
    }

    /// rgb = background (optionally a linear gradient to `bg2`) blended with `fg` by
    /// the canvas coverage.
    mutating func compose(bg: SIMD3<Float>, fg: SIMD3<Float>, bg2: SIMD3<Float>?, gradientAngle: Float = 0) {
        let n = Painter.side, plane = n * n
        let ca = pcos(gradientAngle), sa = psin(gradientAngle)
        for y in 0..<n {
            for x in 0..<n {
                let k = y * n + x
                var back = bg
                if let bg2 {
                    let t = 0.5 + ((Float(x) / Float(n) - 0.5) * ca + (Float(y) / Float(n) - 0.5) * sa)
                    back = bg + (bg2 - bg) * min(max(t, 0), 1)
                }
                let a = canvas.values[k]
                let c = back + (fg - back) * a
                rgb[k] = c.x; rgb[plane + k] = c.y; rgb[2 * plane + k] = c.z
            }
        }
    }

    /// Fills `rgb` with a colourful procedural texture: two octaves of colour value
    /// noise, sometimes with stripes — a stand-in for the natural-image patches of
    /// MNIST-M.
    mutating func texture(_ rng: inout SeededGenerator) {
        let n = Painter.side, plane = n * n
        for k in 0..<(3 * plane) { rgb[k] = 0 }
        let octaves: [(Int, Float)] = [(2 + rng.nextInt(below: 4), 1), (5 + rng.nextInt(below: 4), rng.uniform(0.1, 0.3))]
        var total: Float = 0
        for (g, amp) in octaves {
            total += amp
            let nodes = (0..<((g + 1) * (g + 1) * 3)).map { _ in rng.nextUniform() }
            for y in 0..<n {
                let fy = Float(y) / Float(n - 1) * Float(g)
                let y0 = min(Int(fy), g - 1), ty = smooth(fy - Float(y0))
                for x in 0..<n {
                    let fx = Float(x) / Float(n - 1) * Float(g)
                    let x0 = min(Int(fx), g - 1), tx = smooth(fx - Float(x0))
                    for c in 0..<3 {
                        func node(_ i: Int, _ j: Int) -> Float { nodes[((j * (g + 1)) + i) * 3 + c] }
                        let top = node(x0, y0) * (1 - tx) + node(x0 + 1, y0) * tx
                        let bot = node(x0, y0 + 1) * (1 - tx) + node(x0 + 1, y0 + 1) * tx
                        rgb[c * plane + y * n + x] += amp * (top * (1 - ty) + bot * ty)
                    }
                }
            }
        }
        // Natural-image-like: moderate contrast, colours partly desaturated.
        let contrast = rng.uniform(1.3, 2.2), saturation = rng.uniform(0.35, 0.9)
        for k in 0..<plane {
            let r = rgb[k] / total, g = rgb[plane + k] / total, b = rgb[2 * plane + k] / total
            let l = 0.299 * r + 0.587 * g + 0.114 * b
            for (c, v) in [r, g, b].enumerated() {
                let mixed = l + (v - l) * saturation
                rgb[c * plane + k] = min(max(0.5 + (mixed - 0.5) * contrast, 0), 1)
            }
        }
        if rng.nextUniform() < 0.4 {  // stripes or ripples, as in bark, fabric, water
            let f = Point(rng.uniform(-1.2, 1.2), rng.uniform(-1.2, 1.2))
            let phase = rng.uniform(0, 2 * .pi), amp = rng.uniform(0.1, 0.3)
            let tint = SIMD3(rng.nextUniform(), rng.nextUniform(), rng.nextUniform())
            for y in 0..<n {
                for x in 0..<n {
                    let v = amp * psin(f.x * Float(x) + f.y * Float(y) + phase)
                    for c in 0..<3 { rgb[c * plane + y * n + x] = min(max(rgb[c * plane + y * n + x] + v * tint[c], 0), 1) }
                }
            }
        }
    }

    @inline(__always) func smooth(_ t: Float) -> Float { t * t * (3 - 2 * t) }
}

/// A separable linear image operator given by a banded 1-D matrix M (out = M·X·Mᵀ):
/// here bilinear downsampling to `low` pixels, bilinear upsampling back, then a
/// Gaussian blur — SVHN's low resolution and softness in one pass.
struct BandedOperator {
    /// For output index i: first input index and weights of the band.
    var start: [Int]
    var weights: [[Float]]

    init(matrix m: [[Float]]) {
        start = []
        weights = []
        for row in m {
            let nz = row.indices.filter { abs(row[$0]) > 1e-6 }
            let a = nz.first ?? 0, b = nz.last ?? 0
            start.append(a)
            weights.append(Array(row[a...b]))
        }
    }

    /// Applies the operator to `planes` side×side planes stored back to back.
    func apply(_ x: inout [Float], planes: Int, side n: Int, scratch: inout [Float]) {
        let plane = n * n
        x.withUnsafeMutableBufferPointer { v in
            scratch.withUnsafeMutableBufferPointer { t in
                for p in 0..<planes {
                    let o = p * plane
                    // Rows: t[y, i] = sum_j M[i, j] v[y, j]
                    for y in 0..<n {
                        for i in 0..<n {
                            var acc: Float = 0
                            let w = weights[i], s0 = start[i]
                            for k in 0..<w.count { acc += w[k] * v[o + y * n + s0 + k] }
                            t[o + y * n + i] = acc
                        }
                    }
                    // Columns: v[i, x] = sum_j M[i, j] t[j, x]
                    for i in 0..<n {
                        let w = weights[i], s0 = start[i]
                        for xx in 0..<n {
                            var acc: Float = 0
                            for k in 0..<w.count { acc += w[k] * t[o + (s0 + k) * n + xx] }
                            v[o + i * n + xx] = acc
                        }
                    }
                }
            }
        }
    }
}

/// The 1-D matrix of a bilinear resize from `from` to `to` samples (pixel centres aligned).
private func resizeMatrix(from: Int, to: Int) -> [[Float]] {
    var m = [[Float]](repeating: [Float](repeating: 0, count: from), count: to)
    let scale = Float(from) / Float(to)
    for i in 0..<to {
        let f = max(0, (Float(i) + 0.5) * scale - 0.5)
        let a = min(Int(f), from - 1), b = min(a + 1, from - 1)
        let w = f - Float(a)
        m[i][a] += 1 - w
        m[i][b] += w
    }
    return m
}

/// The 1-D matrix of a Gaussian blur with clamped edges.
private func blurMatrix(size: Int, sigma: Float) -> [[Float]] {
    let radius = max(1, Int((2.5 * sigma).rounded(.up)))
    var kernel = (-radius...radius).map { k in pexp(-Float(k * k) / (2 * sigma * sigma)) }
    let total = kernel.reduce(0, +)
    kernel = kernel.map { $0 / total }
    var m = [[Float]](repeating: [Float](repeating: 0, count: size), count: size)
    for i in 0..<size {
        for k in -radius...radius { m[i][min(max(i + k, 0), size - 1)] += kernel[k + radius] }
    }
    return m
}

private func multiply(_ a: [[Float]], _ b: [[Float]]) -> [[Float]] {
    let n = a.count, m = b[0].count, inner = b.count
    var out = [[Float]](repeating: [Float](repeating: 0, count: m), count: n)
    for i in 0..<n { for k in 0..<inner where a[i][k] != 0 { for j in 0..<m { out[i][j] += a[i][k] * b[k][j] } } }
    return out
}

/// SVHN degradations: resolution 14…20 pixels × blur sigma 0.3…0.8.
let degradeOperators: [[BandedOperator]] = (14...20).map { low in
    let down = resizeMatrix(from: Digits5.imageSide, to: low)
    let up = resizeMatrix(from: low, to: Digits5.imageSide)
    let resample = multiply(up, down)
    return (0..<6).map { s in
        BandedOperator(matrix: multiply(blurMatrix(size: Digits5.imageSide, sigma: 0.3 + 0.1 * Float(s)), resample))
    }
}
