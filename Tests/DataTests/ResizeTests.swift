import Foundation
import XCTest
@testable import Data

/// Antialiased bilinear resizing against Pillow's `Image.resize(…, BILINEAR)` of
/// real photographs, hand-computed weights, and the planar layout `Dataset` uses.
final class ResizeTests: XCTestCase {
    func testMatchesPillowOnPhotographs() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: ImageFixtures.directory)
            .filter { $0.hasPrefix("resize-") && $0.hasSuffix(".png") }.sorted()
        XCTAssertEqual(files.count, 12)
        var worst = 0
        for file in files {
            // resize-NAME-WxH.png: Pillow's resize of Pillow's decode of photo-NAME.jpg.
            let parts = file.dropFirst("resize-".count).dropLast(".png".count).split(separator: "-")
            let size = parts[1].split(separator: "x").map { Int($0)! }
            let photo = try ImageFile.decode(path: ImageFixtures.path("photo-\(parts[0]).jpg"))
            let expected = try ImageFile.decode(path: ImageFixtures.path(file))
            let resized = resizeAntialiased(photo, width: size[0], height: size[1])
            XCTAssertEqual([resized.width, resized.height, resized.channels],
                           [expected.width, expected.height, expected.channels], file)
            let d = maxDifference(resized.pixels, expected.pixels)
            print("\(file): max difference from Pillow \(d)")
            worst = max(worst, d)
            assertPixels(resized.pixels, expected.pixels, tolerance: 1, file)
        }
        print("resize vs Pillow: max difference \(worst) over \(files.count) cases")
    }

    func testHandComputedWeights() {
        // 4 → 2 (scale 2, support 2): output 0 takes sources 0, 1, 2 with triangle
        // weights 0.75, 0.75, 0.25 (normalized: 3/7, 3/7, 1/7), output 1 sources 1, 2, 3.
        let down = resizeAntialiased(DecodedImage(width: 4, height: 1, channels: 1, pixels: [0, 100, 200, 255]), width: 2, height: 1)
        XCTAssertEqual(down.pixels, [71, 209])  // 500/7 = 71.4, 1465/7 = 209.3
        // 2 → 4 (support 1): centres at 0.25, 0.75, 1.25, 1.75 source pixels.
        let up = resizeAntialiased(DecodedImage(width: 2, height: 1, channels: 1, pixels: [0, 200]), width: 4, height: 1)
        XCTAssertEqual(up.pixels, [0, 50, 150, 200])
        // The same along the vertical axis, and each colour channel on its own.
        let column = resizeAntialiased(DecodedImage(width: 1, height: 2, channels: 3, pixels: [0, 200, 40, 200, 0, 80]), width: 1, height: 4)
        XCTAssertEqual(column.pixels, [0, 200, 40, 50, 150, 50, 150, 50, 70, 200, 0, 80])
        let weights = ResampleWeights(inSize: 4, outSize: 2)
        XCTAssertEqual(weights.first, [0, 1])
        XCTAssertEqual(weights.count, [3, 3])
        XCTAssertEqual(weights.ksize, 5)
        XCTAssertEqual(Array(weights.weights[0..<3]), [1_797_559, 1_797_559, 599_186])  // 3/7, 3/7, 1/7 of 2^22, rounded
    }

    func testSameSizeIsACopyAndConstantStaysConstant() {
        let image = DecodedImage(width: 5, height: 3, channels: 3, pixels: (0..<45).map { UInt8($0 * 5) })
        XCTAssertEqual(resizeAntialiased(image, width: 5, height: 3), image)
        let flat = DecodedImage(width: 17, height: 9, channels: 1, pixels: [UInt8](repeating: 123, count: 153))
        for (w, h) in [(3, 2), (40, 31), (17, 4), (1, 1)] {
            let r = resizeAntialiased(flat, width: w, height: h)
            XCTAssertEqual(r.pixels, [UInt8](repeating: 123, count: w * h), "\(w)×\(h)")
        }
    }

    func testPlanarLayoutRepeatsGrey() {
        let rgb = DecodedImage(width: 2, height: 1, channels: 3, pixels: [1, 2, 3, 4, 5, 6])
        XCTAssertEqual(rgb.planarRGB(), [1, 4, 2, 5, 3, 6])
        let grey = DecodedImage(width: 3, height: 1, channels: 1, pixels: [7, 8, 9])
        XCTAssertEqual(grey.planarRGB(), [7, 8, 9, 7, 8, 9, 7, 8, 9])
        // A decoded file goes straight into a Dataset.
        let set = Dataset(domain: "photos", channels: 3, height: 1, width: 3, pixels: grey.planarRGB(), labels: [0], classCount: 1)
        XCTAssertEqual(Array(set.image(0)), [7, 8, 9, 7, 8, 9, 7, 8, 9])
    }
}
