import XCTest
@testable import Data

final class RasterTests: XCTestCase {
    func testBilinearHalvingAveragesBlocks() {
        let src: [Float] = [0, 2, 4, 6,
                            2, 4, 6, 8,
                            10, 12, 14, 16,
                            12, 14, 16, 18]
        let out = resizeBilinear(src, width: 4, height: 4, toWidth: 2, height: 2)
        XCTAssertEqual(out, [2, 6, 12, 16])
        XCTAssertEqual(resizeBilinear(src, width: 4, height: 4, toWidth: 4, height: 4), src)
    }

    func testColourToGreyAndGreyToColour() {
        // One 3×1×2 image: red plane [255, 0], green [0, 255], blue [0, 0].
        let rgb: [UInt8] = [255, 0, 0, 255, 0, 0]
        let grey = conform(rgb, count: 1, channels: 3, height: 1, width: 2, to: ImageShape(channels: 1, height: 1, width: 2))
        XCTAssertEqual(grey.pixels, [76, 150])  // 0.299·255, 0.587·255
        let back = conform(grey.pixels, count: 1, channels: 1, height: 1, width: 2, to: ImageShape(channels: 3, height: 1, width: 2))
        XCTAssertEqual(back.pixels, [76, 150, 76, 150, 76, 150])
    }

    func testStrokeIsAntiAliased() {
        var canvas = Canvas(width: 10, height: 10)
        canvas.stroke([Point(2, 5.3), Point(8, 5.3)], penWidth: 2, softness: 1)
        XCTAssertEqual(canvas.values[5 * 10 + 5], 1)           // centre 0.2 px from the line
        XCTAssertEqual(canvas.values[0], 0)                    // far away
        let edge = canvas.values[4 * 10 + 5]                   // centre 0.8 px away: partly covered
        XCTAssertEqual(edge, 0.7, accuracy: 1e-5)
        XCTAssertGreaterThan(edge, 0)
        XCTAssertLessThan(edge, 1)
    }
}
