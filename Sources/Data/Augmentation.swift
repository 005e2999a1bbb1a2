// Training-time augmentation, FedBN's Office/DomainNet transform: a random
// horizontal flip (p = 0.5), then a random rotation by an angle drawn uniformly
// from [−D, D] degrees about the image centre, nearest neighbour, outside filled
// with 0 — torchvision's RandomHorizontalFlip and RandomRotation on a PIL image,
// i.e. Pillow's `rotate(angle, NEAREST)`, reproduced pixel for pixel. Every draw
// comes from a generator the caller seeds per sample; evaluation never augments.

import Foundation
import Tensor

/// Which random transforms training samples get.
public struct Augmentation: Sendable, Equatable, CustomStringConvertible {
    /// Flip horizontally with probability 0.5.
    public var flip: Bool
    /// Rotate by a uniform angle in [−rotateDegrees, rotateDegrees]; 0 for none.
    public var rotateDegrees: Double

    public init(flip: Bool = false, rotateDegrees: Double = 0) {
        self.flip = flip
        self.rotateDegrees = rotateDegrees
    }

    /// No augmentation.
    public static let none = Augmentation()

    /// Whether any transform is on.
    public var isEnabled: Bool { flip || rotateDegrees > 0 }

    /// Parses `none`, `flip`, `rotate:D` or a comma-separated list (`flip,rotate:30`).
    /// - Throws: `DataError.invalidSpec` quoting the value.
    public init(parsing text: String) throws {
        self.init()
        guard text != "none" else { return }
        for part in text.split(separator: ",", omittingEmptySubsequences: false).map({ $0.trimmingCharacters(in: .whitespaces) }) {
            if part == "flip" { flip = true; continue }
            if part.hasPrefix("rotate:"), let d = Double(part.dropFirst(7)), d > 0, d <= 180 {
                rotateDegrees = d
                continue
            }
            throw DataError.invalidSpec(value: text, reason: "expected none, or a comma-separated list of flip and rotate:D with 0 < D ≤ 180 (e.g. flip,rotate:30)")
        }
    }

    public var description: String {
        guard isEnabled else { return "none" }
        return ([flip ? "flip" : nil, rotateDegrees > 0 ? "rotate:\(rotateDegrees.formatted())" : nil] as [String?]).compactMap { $0 }.joined(separator: ",")
    }

    /// Transforms one C×H×W image of bytes in place of `out` (which must hold C×H×W).
    public func apply(_ image: ArraySlice<UInt8>, channels: Int, height: Int, width: Int,
                      rng: inout SeededGenerator, into out: inout [UInt8]) {
        let plane = height * width
        precondition(image.count == channels * plane && out.count >= channels * plane, "Augmentation.apply: sizes disagree")
        let mirror = flip && rng.nextDouble() < 0.5
        let angle = rotateDegrees > 0 ? (rng.nextDouble() * 2 - 1) * rotateDegrees : 0
        Self.transform(image, channels: channels, height: height, width: width, mirror: mirror, degrees: angle, into: &out)
    }

    /// Mirrors (when asked), then rotates counter-clockwise by `degrees` as Pillow's
    /// `rotate(degrees, NEAREST)` does.
    static func transform(_ image: ArraySlice<UInt8>, channels: Int, height: Int, width: Int,
                          mirror: Bool, degrees angle: Double, into out: inout [UInt8]) {
        let plane = height * width
        let base = image.startIndex
        if angle == 0 {
            for c in 0..<channels {
                for y in 0..<height {
                    let row = base + c * plane + y * width, o = c * plane + y * width
                    for x in 0..<width { out[o + x] = image[row + (mirror ? width - 1 - x : x)] }
                }
            }
            return
        }
        // Pillow's rotate: the inverse affine map of each output pixel centre, sampled
        // with `COORD(v) = v < 0 ? -1 : Int(v)`, out of range filled with 0.
        let r = -angle * Double.pi / 180
        func round15(_ v: Double) -> Double { (v * 1e15).rounded() / 1e15 }
        let a0 = round15(PortableMath.cos(r)), a1 = round15(PortableMath.sin(r))
        let a3 = round15(-PortableMath.sin(r)), a4 = a0
        let cx = Double(width) / 2, cy = Double(height) / 2
        let a2 = a0 * -cx + a1 * -cy + cx, a5 = a3 * -cx + a4 * -cy + cy
        var xo = a2 + a1 * 0.5 + a0 * 0.5, yo = a5 + a4 * 0.5 + a3 * 0.5
        for y in 0..<height {
            var xx = xo, yy = yo
            for x in 0..<width {
                let ix = xx < 0 ? -1 : Int(xx), iy = yy < 0 ? -1 : Int(yy)
                let inside = xx >= 0 && yy >= 0 && ix < width && iy < height
                for c in 0..<channels {
                    let sx = mirror ? width - 1 - ix : ix
                    out[c * plane + y * width + x] = inside ? image[base + c * plane + iy * width + sx] : 0
                }
                xx += a0; yy += a3
            }
            xo += a1; yo += a4
        }
    }
}
