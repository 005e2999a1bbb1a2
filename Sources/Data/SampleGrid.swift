// Seeing the data: a grid of samples, one row per domain, as a PNG.

import Foundation

/// Renders samples of several datasets side by side.
public enum SampleGrid {
    /// An RGB image with `perClass` samples of each class from every dataset: one
    /// row of tiles per dataset, columns ordered by class (0, 0, 1, 1, ... for
    /// `perClass` 2), tiles separated by a grey line.
    /// - Parameters:
    ///   - datasets: one row each; single-channel datasets are shown grey.
    ///   - perClass: samples of each class per row.
    ///   - scale: each pixel becomes scale×scale pixels.
    /// - Returns: width, height and H×W×3 RGB bytes.
    public static func render(_ datasets: [Dataset], perClass: Int = 2, scale: Int = 3)
        -> (width: Int, height: Int, rgb: [UInt8]) {
        precondition(!datasets.isEmpty && perClass > 0 && scale > 0)
        let tileH = datasets.map(\.height).max()!, tileW = datasets.map(\.width).max()!
        let classes = datasets.map(\.classCount).max()!
        let cols = classes * perClass, gap = 1
        let width = (cols * (tileW + gap) + gap) * scale
        let height = (datasets.count * (tileH + gap) + gap) * scale
        var rgb = [UInt8](repeating: 96, count: width * height * 3)
        for (row, ds) in datasets.enumerated() {
            var picked = [[Int]](repeating: [], count: classes)
            for i in 0..<ds.count where picked[Int(ds.labels[i])].count < perClass {
                picked[Int(ds.labels[i])].append(i)
            }
            for c in 0..<classes {
                for (j, index) in picked[c].enumerated() {
                    let col = c * perClass + j
                    let ox = (gap + col * (tileW + gap)) * scale, oy = (gap + row * (tileH + gap)) * scale
                    let plane = ds.height * ds.width
                    let base = index * ds.imageSize
                    for y in 0..<(ds.height * scale) {
                        for x in 0..<(ds.width * scale) {
                            let p = (y / scale) * ds.width + x / scale
                            let o = ((oy + y) * width + ox + x) * 3
                            for ch in 0..<3 {
                                rgb[o + ch] = ds.pixels[base + min(ch, ds.channels - 1) * plane + p]
                            }
                        }
                    }
                }
            }
        }
        return (width, height, rgb)
    }

    /// Writes `render(datasets, perClass:, scale:)` as a PNG file.
    /// - Throws: `DataError.io` when the file cannot be written.
    public static func writePNG(_ datasets: [Dataset], to path: String, perClass: Int = 2, scale: Int = 3) throws {
        let (w, h, rgb) = render(datasets, perClass: perClass, scale: scale)
        let bytes = PNG.encodeRGB(width: w, height: h, rgb: rgb)
        do {
            try Data(bytes).write(to: URL(fileURLWithPath: path))
        } catch {
            throw DataError.io(file: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }
}
