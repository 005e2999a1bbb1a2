// Stroke skeletons of the ten digits, the raw material of the `digits5` generator.
//
// A glyph is a set of strokes (polylines) in a unit box: x from 0 (left) to 1
// (right), y from 0 (top) to 1 (bottom). The box is later stretched to the digit's
// width and height, slanted, rotated and jittered, then drawn with a round pen.
// Each digit has several writing variants (open and closed 4, barred 7, serif 1,
// flat-topped 3, curly 2, ...) in a handwritten set and a printed set.

typealias Point = SIMD2<Float>

/// A digit skeleton: polylines in the unit box.
struct Glyph {
    var strokes: [[Point]]
}

/// Points on an elliptical arc centred at (cx, cy) with radii (rx, ry), from angle
/// `a0` to `a1` degrees (0 = right, 90 = bottom, since y grows downwards).
private func arc(_ cx: Float, _ cy: Float, _ rx: Float, _ ry: Float,
                 _ a0: Float, _ a1: Float, steps: Int = 0) -> [Point] {
    let n = steps > 0 ? steps : max(4, Int(abs(a1 - a0) / 15))
    return (0...n).map { k in
        let a = (a0 + (a1 - a0) * Float(k) / Float(n)) * .pi / 180
        return Point(cx + rx * pcos(a), cy + ry * psin(a))
    }
}

/// Points on a quadratic Bézier curve from `p0` to `p2` pulled towards `c`.
private func bezier(_ p0: Point, _ c: Point, _ p2: Point, steps: Int = 8) -> [Point] {
    (0...steps).map { k in
        let t = Float(k) / Float(steps)
        let a = (1 - t) * (1 - t), b = 2 * (1 - t) * t, d = t * t
        return a * p0 + b * c + d * p2
    }
}

private func P(_ x: Float, _ y: Float) -> Point { Point(x, y) }

/// Appends `tail` to `head`, dropping a duplicated joining point.
private func join(_ head: [Point], _ tail: [Point]) -> [Point] {
    guard let last = head.last, let first = tail.first else { return head + tail }
    let d = last - first
    return (d * d).sum() < 1e-6 ? head + tail.dropFirst() : head + tail
}

enum Glyphs {
    /// Handwritten variants, indexed by digit.
    static let handwritten: [[Glyph]] = [
        // 0: closed oval; oval with an overshooting, slightly open start
        [Glyph(strokes: [arc(0.5, 0.5, 0.44, 0.48, -90, 270, steps: 24)]),
         Glyph(strokes: [arc(0.5, 0.5, 0.42, 0.48, -60, 300, steps: 24)])],
        // 1: plain bar; bar with a flag; flag and base
        [Glyph(strokes: [[P(0.55, 0.02), P(0.45, 0.98)]]),
         Glyph(strokes: [[P(0.2, 0.28), P(0.58, 0.02), P(0.52, 0.98)]]),
         Glyph(strokes: [[P(0.25, 0.25), P(0.58, 0.02), P(0.54, 0.96)], [P(0.22, 0.97), P(0.85, 0.95)]])],
        // 2: round top, diagonal, flat base; looped base; curly base
        [Glyph(strokes: [join(arc(0.5, 0.28, 0.4, 0.26, -170, 20), [P(0.05, 0.97), P(0.95, 0.97)])]),
         Glyph(strokes: [join(join(arc(0.5, 0.28, 0.4, 0.26, -170, 25), [P(0.22, 0.8)]),
                              join(arc(0.24, 0.86, 0.14, 0.11, -60, 250, steps: 16), [P(0.6, 0.92), P(0.95, 0.9)]))]),
         Glyph(strokes: [join(join(arc(0.5, 0.28, 0.4, 0.26, -170, 30), bezier(P(0.85, 0.41), P(0.35, 0.7), P(0.08, 0.95))),
                              bezier(P(0.08, 0.95), P(0.5, 0.82), P(0.95, 0.95)))])],
        // 3: two bowls; flat top
        [Glyph(strokes: [join(arc(0.47, 0.27, 0.38, 0.24, -160, 90), arc(0.47, 0.74, 0.45, 0.25, -90, 160))]),
         Glyph(strokes: [join([P(0.1, 0.03), P(0.88, 0.03), P(0.42, 0.42)], arc(0.5, 0.7, 0.43, 0.28, -100, 160))])],
        // 4: closed; open
        [Glyph(strokes: [[P(0.68, 0.02), P(0.05, 0.68), P(0.95, 0.68)], [P(0.68, 0.02), P(0.7, 0.98)]]),
         Glyph(strokes: [[P(0.15, 0.02), P(0.08, 0.58), P(0.92, 0.58)], [P(0.72, 0.15), P(0.72, 0.98)]])],
        // 5: flag and bowl
        [Glyph(strokes: [[P(0.88, 0.03), P(0.25, 0.03)], join([P(0.25, 0.03), P(0.18, 0.46)], arc(0.5, 0.68, 0.42, 0.3, -140, 150))]),
         Glyph(strokes: [join([P(0.85, 0.05), P(0.28, 0.03), P(0.2, 0.5)], bezier(P(0.2, 0.5), P(1.15, 0.3), P(0.6, 0.9))) + [P(0.1, 0.93)]])],
        // 6: curved stem into a loop; straight stem
        [Glyph(strokes: [join(bezier(P(0.78, 0.02), P(0.1, 0.2), P(0.08, 0.7)), arc(0.5, 0.7, 0.42, 0.28, 180, -180, steps: 24))]),
         Glyph(strokes: [join([P(0.7, 0.02), P(0.12, 0.66)], arc(0.5, 0.72, 0.38, 0.26, 190, -170, steps: 24))])],
        // 7: plain; barred; curved stem
        [Glyph(strokes: [[P(0.05, 0.05), P(0.95, 0.05), P(0.38, 0.98)]]),
         Glyph(strokes: [[P(0.05, 0.05), P(0.95, 0.05), P(0.38, 0.98)], [P(0.3, 0.52), P(0.85, 0.5)]]),
         Glyph(strokes: [join([P(0.05, 0.1), P(0.95, 0.05)], bezier(P(0.95, 0.05), P(0.5, 0.45), P(0.45, 0.98)))])],
        // 8: two loops; small top loop
        [Glyph(strokes: [arc(0.5, 0.26, 0.34, 0.24, -90, 270, steps: 20), arc(0.5, 0.73, 0.42, 0.25, -90, 270, steps: 20)]),
         Glyph(strokes: [arc(0.53, 0.25, 0.3, 0.22, 90, 450, steps: 20), arc(0.47, 0.72, 0.45, 0.27, -90, 270, steps: 20)])],
        // 9: loop and straight stem; curved stem
        [Glyph(strokes: [arc(0.5, 0.3, 0.42, 0.28, 0, 360, steps: 24), [P(0.92, 0.3), P(0.85, 0.98)]]),
         Glyph(strokes: [arc(0.5, 0.3, 0.42, 0.28, 0, 360, steps: 24), bezier(P(0.92, 0.3), P(0.9, 0.85), P(0.35, 0.97))])],
    ]

    /// Printed (font-like) variants, indexed by digit.
    static let printed: [[Glyph]] = [
        [Glyph(strokes: [arc(0.5, 0.5, 0.42, 0.47, 0, 360, steps: 28)])],
        [Glyph(strokes: [[P(0.22, 0.22), P(0.56, 0.03), P(0.56, 0.97)]]),
         Glyph(strokes: [[P(0.22, 0.22), P(0.56, 0.03), P(0.56, 0.97)], [P(0.22, 0.97), P(0.9, 0.97)]])],
        [Glyph(strokes: [join(join(arc(0.5, 0.29, 0.4, 0.26, -165, 20), bezier(P(0.876, 0.38), P(0.6, 0.6), P(0.06, 0.97))), [P(0.94, 0.97)])])],
        [Glyph(strokes: [join(arc(0.5, 0.27, 0.38, 0.24, -155, 90), arc(0.5, 0.74, 0.43, 0.25, -90, 155))]),
         Glyph(strokes: [join([P(0.1, 0.03), P(0.88, 0.03), P(0.45, 0.4)], arc(0.5, 0.7, 0.42, 0.28, -95, 155))])],
        [Glyph(strokes: [[P(0.7, 0.97), P(0.7, 0.03), P(0.05, 0.7), P(0.95, 0.7)]])],
        [Glyph(strokes: [join([P(0.85, 0.03), P(0.25, 0.03), P(0.2, 0.45)], arc(0.52, 0.68, 0.4, 0.29, -145, 145))])],
        [Glyph(strokes: [join(bezier(P(0.8, 0.06), P(0.1, 0.05), P(0.09, 0.68)), arc(0.5, 0.69, 0.41, 0.29, 180, -180, steps: 24))])],
        [Glyph(strokes: [[P(0.05, 0.03), P(0.95, 0.03), P(0.4, 0.97)]]),
         Glyph(strokes: [join([P(0.05, 0.03), P(0.95, 0.03)], bezier(P(0.95, 0.03), P(0.45, 0.5), P(0.42, 0.97)))])],
        [Glyph(strokes: [arc(0.5, 0.26, 0.35, 0.23, 0, 360, steps: 22), arc(0.5, 0.73, 0.42, 0.25, 0, 360, steps: 22)])],
        [Glyph(strokes: [join(arc(0.5, 0.31, 0.41, 0.29, 0, -360, steps: 24), bezier(P(0.91, 0.31), P(0.9, 0.93), P(0.2, 0.94)))])],
    ]
}

import Foundation
