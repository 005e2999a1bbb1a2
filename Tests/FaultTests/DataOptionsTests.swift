import ArgumentParser
import Data
import Foundation
import XCTest
@testable import FedKitCLI

/// A client's data options on a dataset folder: `--test-count` keeps the first images of a
/// large test split (real test sets run to tens of thousands of images a round).
final class DataOptionsTests: XCTestCase {
    func testTestCountKeepsTheFirstImagesOfAFolderDomain() throws {
        let root = NSTemporaryDirectory() + "fedkit-options-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        let usps = Digits5.makeDomains([.usps], trainCount: 20, testCount: 10, seed: 4)
        try DatasetFolder.write(usps, root: root)

        let all = try DataOptions.parse(["--data", "\(root):usps"]).load(ConfigFile())
        XCTAssertEqual(all.test.count, 10)
        let capped = try DataOptions.parse(["--data", "\(root):usps", "--test-count", "4"]).load(ConfigFile())
        XCTAssertEqual(capped.test.labels, Array(usps[0].test.labels.prefix(4)))
        XCTAssertEqual(capped.test.pixels, Array(usps[0].test.pixels.prefix(4 * usps[0].test.imageSize)))
        XCTAssertEqual(capped.trainIndices, all.trainIndices, "the cap is on test images only")
        let larger = try DataOptions.parse(["--data", "\(root):usps", "--test-count", "50"]).load(ConfigFile())
        XCTAssertEqual(larger.test.count, 10)
        XCTAssertThrowsError(try DataOptions.parse(["--data", "\(root):usps", "--test-count", "0"]).load(ConfigFile())) { error in
            XCTAssertTrue("\(error)".contains("--test-count (0)"), "\(error)")
        }
    }
}
