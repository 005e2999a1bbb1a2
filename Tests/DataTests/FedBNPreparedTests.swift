import Foundation
import XCTest
@testable import Data

/// FedBN's prepared Office-Caltech-10 and DomainNet lists. The `.pkl` files and
/// `expected.json` (the paths and labels FedBN's own loader gives) are written by
/// `Fixtures/make_fedbn_fixtures.py`; this test writes the images they name.
final class FedBNPreparedTests: XCTestCase {
    var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "fedkit-fedbn-prepared-\(UUID().uuidString)"
        try FileManager.default.copyItem(atPath: ImageFixtures.path("fedbn"), toPath: root)
        for (_, list) in try expected() {
            for (path, label) in zip(list.paths, list.labels) { try writeImage("\(root)/\(path)", label: label) }
        }
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func expected() throws -> [String: (paths: [String], labels: [Int])] {
        let json = try ImageFixtures.json("fedbn/expected.json")
        return json.mapValues { v in
            let d = v as! [String: Any]
            return (d["paths"] as! [String], d["labels"] as! [Int])
        }
    }

    /// A 24×20 JPEG whose colour encodes `label`.
    func writeImage(_ path: String, label: Int) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let rgb = [UInt8(20 * label + 10), UInt8(250 - 20 * label), 60]
        let image = DecodedImage(width: 24, height: 20, channels: 3, pixels: (0..<(24 * 20)).flatMap { _ in rgb })
        try writeFile(try JPEG.encode(image, quality: 95, name: path), to: path)
    }

    func labelsFromColour(_ d: Dataset) -> [Int] {
        (0..<d.count).map { i in
            let red = Int(d.image(i).first!)
            return Int((Double(red - 10) / 20).rounded())
        }
    }

    func testTheListsLoadTheImagesAndLabelsFedBNsLoaderGives() throws {
        let want = try expected()
        let shape = ImageShape(channels: 3, height: 12, width: 12)
        let office = try DatasetFolder.load(root: root, domains: ["amazon", "webcam"], shape: shape)
        let net = try DatasetFolder.load(root: root, domains: ["clipart"], shape: shape)[0]
        for (d, folder) in [(office[0], "office_caltech_10"), (office[1], "office_caltech_10"), (net, "DomainNet")] {
            for (split, data) in [("train", d.train), ("test", d.test)] {
                let list = want["\(folder)/\(d.name)_\(split).pkl"]!
                XCTAssertEqual(data.labels.map(Int.init), list.labels, "\(d.name) \(split): FedBN's label order")
                XCTAssertEqual(labelsFromColour(data), list.labels, "\(d.name) \(split): each image is the file its entry names, in order")
                XCTAssertEqual(data.classCount, 10)
            }
        }
        XCTAssertEqual(office[0].classNames.first, "back_pack")
        XCTAssertEqual(office[0].classNames.last, "projector")
        XCTAssertEqual(net.classNames, ["bird", "feather", "headphones", "ice_cream", "teapot", "tiger", "whale", "windmill", "wine_glass", "zebra"])
        // The collection folder itself works as --data too (paths stay relative to its parent).
        let viaFolder = try DatasetFolder.load(root: root + "/office_caltech_10", domains: ["webcam"], shape: shape)[0]
        XCTAssertEqual(viaFolder, office[1])
        XCTAssertEqual(try DatasetFolder.domainNames(root: root + "/office_caltech_10"), ["amazon", "webcam"])
    }

    func testARootWithBothCollectionsNeedsTheDomainsNamed() throws {
        XCTAssertThrowsError(try DatasetFolder.domainNames(root: root)) { e in
            XCTAssertTrue("\(e)".contains("holds both office_caltech_10 and DomainNet"), "\(e)")
        }
        XCTAssertThrowsError(try DatasetFolder.load(root: root, domains: ["dslr"])) { e in
            XCTAssertTrue("\(e)".contains("office_caltech_10/dslr_train.pkl: no such file (FedBN's train split of dslr)"), "\(e)")
        }
        XCTAssertThrowsError(try DatasetFolder.load(root: root, domains: ["mars"])) { e in
            XCTAssertTrue("\(e)".contains("\"mars\": no such domain among FedBN's prepared files"), "\(e)")
        }
    }

    func testBadListsAreRefusedNamingTheFileAndTheEntry() throws {
        let list = "\(root)/office_caltech_10/amazon_train.pkl"
        func fails(_ bad: String, _ words: [String], line: UInt = #line) throws {
            try FileManager.default.removeItem(atPath: list)
            try FileManager.default.copyItem(atPath: ImageFixtures.path("fedbn-bad/\(bad).pkl"), toPath: list)
            XCTAssertThrowsError(try DatasetFolder.load(root: root, domains: ["amazon"]), line: line) { e in
                for w in words + ["amazon_train.pkl"] { XCTAssertTrue("\(e)".contains(w), "\(e) should say \(w)", line: line) }
            }
        }
        try fails("escape", ["entry 0", "../../../../etc/passwd", "leaves the dataset root"])
        try fails("absolute", ["entry 0", "\"/etc/passwd\"", "is absolute"])
        try fails("unknown", ["entry 0", "\"sofa\"", "not in FedBN's office_caltech_10 label order (back_pack, bike"])
        try fails("mismatch", ["2 images but 1 labels"])
        // An image a list names that is not there.
        try FileManager.default.removeItem(atPath: list)
        try FileManager.default.copyItem(atPath: ImageFixtures.path("fedbn/office_caltech_10/amazon_train.pkl"), toPath: list)
        try FileManager.default.removeItem(atPath: "\(root)/office_caltech_10/amazon/mug/img_0001.jpg")
        XCTAssertThrowsError(try DatasetFolder.load(root: root, domains: ["amazon"])) { e in
            XCTAssertTrue("\(e)".contains("office_caltech_10/amazon/mug/img_0001.jpg"), "\(e)")
        }
    }

    func testTextArraysOfEveryPicklingAreRead() throws {
        for (name, list) in try expected() {
            let (paths, labels) = try Pickle.loadTextPairs(ImageFixtures.path("fedbn/\(name)"))
            XCTAssertEqual(paths, list.paths, name)
            XCTAssertEqual(labels.count, list.labels.count, name)
        }
    }
}
