import Foundation
import XCTest
import Tensor
@testable import Data

/// Augmentation against Pillow (`Fixtures/make_augment_fixtures.py`) and its seeding.
final class AugmentationTests: XCTestCase {
    func testFlipAndRotationEqualPillowPixelForPixel() throws {
        let f = try ImageFixtures.json("augment.json")
        let h = f["height"] as! Int, w = f["width"] as! Int
        let src = (f["chw"] as! [Int]).map(UInt8.init)
        for case let c as [String: Any] in f["cases"] as! [Any] {
            let mirror = c["mirror"] as! Bool, degrees = c["degrees"] as! Double
            var out = [UInt8](repeating: 7, count: src.count)
            Augmentation.transform(src[...], channels: 3, height: h, width: w, mirror: mirror, degrees: degrees, into: &out)
            assertPixels(out, (c["chw"] as! [Int]).map(UInt8.init), "mirror \(mirror), \(degrees)°")
        }
    }

    func testParsingNamesTheBadValue() throws {
        XCTAssertEqual(try Augmentation(parsing: "flip,rotate:30"), Augmentation(flip: true, rotateDegrees: 30))
        XCTAssertEqual(try Augmentation(parsing: "none"), .none)
        XCTAssertEqual(Augmentation(flip: true, rotateDegrees: 30).description, "flip,rotate:30")
        for bad in ["rotate:0", "rotate:-5", "blur", "flip,", "rotate:x"] {
            XCTAssertThrowsError(try Augmentation(parsing: bad)) { e in
                XCTAssertTrue("\(e)".contains("\"\(bad)\"") && "\(e)".contains("flip,rotate:30"), "\(e)")
            }
        }
    }

    func testTheSameSeedGivesTheSameAugmentedBatches() throws {
        let d = Digits5.generate(domain: .svhn, count: 40, seed: 2, split: .train)
        let aug = Augmentation(flip: true, rotateDegrees: 30)
        func epoch(_ seed: UInt64, _ a: Augmentation, shuffle: Bool = true) -> [[Float]] {
            var it = BatchIterator(dataset: d, batchSize: 8, shuffle: shuffle, seed: seed, augmentation: a)
            var b = Batch(), out: [[Float]] = []
            while it.next(into: &b) { out.append(Array(b.images.prefix(b.count * d.imageSize))) }
            return out
        }
        XCTAssertEqual(epoch(5, aug), epoch(5, aug), "same seed, same augmented batches")
        XCTAssertNotEqual(epoch(5, aug), epoch(6, aug))
        XCTAssertNotEqual(epoch(5, aug), epoch(5, .none), "training samples are transformed")
        // Each sample is its own flip/rotation of the original: with rotation off, every
        // augmented image is the original or its mirror.
        let flips = epoch(5, Augmentation(flip: true), shuffle: false).flatMap { $0 }
        let plain = epoch(5, .none, shuffle: false).flatMap { $0 }
        var mirrored = 0
        for i in 0..<d.count {
            let a = Array(flips[i * d.imageSize ..< (i + 1) * d.imageSize]), p = Array(plain[i * d.imageSize ..< (i + 1) * d.imageSize])
            if a == p { continue }
            var m = p
            for row in 0..<(3 * d.height) { m[row * d.width ..< (row + 1) * d.width].reverse() }
            XCTAssertEqual(a, m, "sample \(i) is either itself or its mirror")
            mirrored += 1
        }
        XCTAssertTrue(mirrored > 5 && mirrored < 35, "about half are mirrored, got \(mirrored)")
    }
}
