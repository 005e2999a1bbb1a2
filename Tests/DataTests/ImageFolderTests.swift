import Foundation
import XCTest
@testable import Data

/// Image folders (ImageFolder's split and class layouts) and their export.
final class ImageFolderTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "fedkit-imagefolder-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Writes a 40×30 JPEG of one colour that encodes `label` (and a PNG when asked).
    func writeImage(_ path: String, label: Int, png: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let rgb = colour(label)
        let pixels = (0..<(40 * 30)).flatMap { _ in rgb }
        let image = DecodedImage(width: 40, height: 30, channels: 3, pixels: pixels)
        if png {
            try writeFile(PNG.encodeRGB(width: 40, height: 30, rgb: pixels), to: path)
        } else {
            try writeFile(try JPEG.encode(image, quality: 95, name: path), to: path)
        }
    }

    func colour(_ label: Int) -> [UInt8] { [UInt8(20 * label + 10), UInt8(250 - 20 * label), 100] }

    /// Asserts every image of `data` has the colour of its label (within JPEG's error).
    func assertColoursMatchLabels(_ data: Dataset, _ what: String, line: UInt = #line) {
        let plane = data.height * data.width
        for i in 0..<data.count {
            let px = Array(data.image(i))
            let expected = colour(Int(data.labels[i]))
            for c in 0..<3 {
                let mean = px[c * plane ..< (c + 1) * plane].reduce(0) { $0 + Int($1) } / plane
                XCTAssertLessThanOrEqual(abs(mean - Int(expected[c])), 3, "\(what) image \(i) channel \(c)", line: line)
            }
        }
    }

    func testSplitLayoutGivesEveryImageItsClassFolderLabel() throws {
        let classes = ["cat", "dog", "fox"]
        for (split, counts) in [("train", [3, 2, 4]), ("test", [1, 2, 1])] {
            for (k, name) in classes.enumerated() {
                for j in 0..<counts[k] {
                    try writeImage("\(dir)/site/\(split)/\(name)/\(j).jpg", label: k, png: j == 1)
                }
            }
        }
        try writeFile(Array("Finder metadata".utf8), to: "\(dir)/site/train/dog/.DS_Store")  // hidden: not a sample
        let shape = ImageShape(channels: 3, height: 16, width: 16)
        let d = try DatasetFolder.load(root: dir, shape: shape)[0]
        XCTAssertEqual(d.name, "site")
        XCTAssertEqual(d.classNames, classes)
        XCTAssertEqual(d.train.labels, [0, 0, 0, 1, 1, 2, 2, 2, 2])
        XCTAssertEqual(d.test.labels, [0, 1, 1, 2])
        XCTAssertEqual([d.train.channels, d.train.height, d.train.width], [3, 16, 16])
        XCTAssertEqual(d.train.classCount, 3)
        assertColoursMatchLabels(d.train, "train")
        assertColoursMatchLabels(d.test, "test")
    }

    func testClassLayoutIsSplitStratifiedSeededAndWhole() throws {
        let counts = [10, 5, 1]
        for (k, n) in counts.enumerated() {
            for j in 0..<n { try writeImage("\(dir)/site/c\(k)/\(String(format: "%02d", j)).jpg", label: k) }
        }
        let shape = ImageShape(channels: 3, height: 8, width: 8)
        func load(_ split: Double, _ seed: UInt64) throws -> DomainData {
            try DatasetFolder.load(root: dir, shape: shape, options: ImageFolderOptions(testSplit: split, seed: seed))[0]
        }
        let a = try load(0.2, 1)
        // round(0.2 × n) of each class to test, at least one image left to train.
        XCTAssertEqual(a.test.classHistogram(), [2, 1, 0])
        XCTAssertEqual(a.train.classHistogram(), [8, 4, 1])
        assertColoursMatchLabels(a.train, "train")
        assertColoursMatchLabels(a.test, "test")
        XCTAssertEqual(try load(0.2, 1), a, "the same seed gives the same split")
        // Which files go to test depends on the seed: compare the split of the file list itself.
        func testFiles(_ seed: UInt64) -> [String] {
            let files = (0..<10).map { (path: "c0/\($0)", label: Int32(0)) }
            return ImageFolder.split(files, domain: "site", options: ImageFolderOptions(testSplit: 0.3, seed: seed)).test.map(\.path)
        }
        XCTAssertEqual(testFiles(1).count, 3)
        XCTAssertNotEqual(Set((1...5).map { testFiles($0) }).count, 1, "different seeds choose different test files")
        let none = try load(0, 1)
        XCTAssertEqual(none.train.count, 16)
        XCTAssertEqual(none.test.count, 0)
    }

    func testTheClassIndexIsOverTheWholeDataset() throws {
        try writeImage("\(dir)/a/train/cat/0.jpg", label: 0)
        try writeImage("\(dir)/a/train/dog/0.jpg", label: 1)
        try writeImage("\(dir)/a/test/cat/0.jpg", label: 0)
        try writeImage("\(dir)/b/train/fox/0.jpg", label: 2)
        try writeImage("\(dir)/b/test/cat/0.jpg", label: 0)
        let shape = ImageShape(channels: 3, height: 8, width: 8)
        let onlyB = try DatasetFolder.load(root: dir, domains: ["b"], shape: shape)[0]
        XCTAssertEqual(onlyB.classNames, ["cat", "dog", "fox"])
        XCTAssertEqual(onlyB.train.labels, [2], "fox is label 2 even in a domain without dogs")
        XCTAssertEqual(onlyB.train.classCount, 3)
        assertColoursMatchLabels(onlyB.train, "b")
        XCTAssertEqual(try DatasetFolder.domainNames(root: dir), ["a", "b"])
    }

    func testBadImageFoldersAreRefusedNamingTheFile() throws {
        let shape = ImageShape(channels: 3, height: 8, width: 8)
        func fails(_ words: [String], line: UInt = #line) {
            XCTAssertThrowsError(try DatasetFolder.load(root: dir, shape: shape), line: line) { e in
                for w in words { XCTAssertTrue("\(e)".contains(w), "\(e) should say \(w)", line: line) }
            }
        }
        try writeImage("\(dir)/site/train/cat/0.jpg", label: 0)
        try writeImage("\(dir)/site/test/cat/0.jpg", label: 0)
        // A non-image file in a class folder.
        try writeFile(Array("not a picture".utf8), to: "\(dir)/site/train/cat/notes.txt")
        fails(["site/train/cat/notes.txt", "not a JPEG or PNG image"])
        try FileManager.default.removeItem(atPath: "\(dir)/site/train/cat/notes.txt")
        // A truncated JPEG.
        let whole = try ImageFixtures.bytes("photo-coffee.jpg")
        try writeFile(Array(whole[0..<(whole.count / 2)]), to: "\(dir)/site/train/cat/cut.jpg")
        fails(["site/train/cat/cut.jpg", "JPEG"])
        try FileManager.default.removeItem(atPath: "\(dir)/site/train/cat/cut.jpg")
        // A 16-bit PNG.
        try FileManager.default.copyItem(atPath: ImageFixtures.path("png-grey16.png"), toPath: "\(dir)/site/train/cat/deep.png")
        fails(["site/train/cat/deep.png", "16"])
        try FileManager.default.removeItem(atPath: "\(dir)/site/train/cat/deep.png")
        // An empty class folder.
        try FileManager.default.createDirectory(atPath: "\(dir)/site/test/dog", withIntermediateDirectories: true)
        fails(["site/test/dog", "holds no images"])
        try FileManager.default.removeItem(atPath: "\(dir)/site/test/dog")
        // A folder inside a class folder.
        try FileManager.default.createDirectory(atPath: "\(dir)/site/test/cat/more", withIntermediateDirectories: true)
        fails(["site/test/cat/more", "image files only"])
        try FileManager.default.removeItem(atPath: "\(dir)/site/test/cat/more")
        // A train folder without a test folder.
        try FileManager.default.removeItem(atPath: "\(dir)/site/test")
        fails(["site", "no test data"])
    }

    func testAnExportedImageFolderReadsBackAsTheSameDataset() throws {
        let shape = ImageShape(channels: 3, height: 32, width: 32)
        let domains = try DataSource.digits5(trainCount: 20, testCount: 10).load(domains: ["svhn", "usps"], seed: 3, shape: shape)
        let root = dir + "/export"
        XCTAssertEqual(try DatasetFolder.writeImageFolder(domains, root: root, quality: 95), 60)
        let back = try DatasetFolder.load(root: root, shape: shape)
        XCTAssertEqual(back.map(\.name), ["svhn", "usps"])
        for (a, b) in zip(domains, back) {
            XCTAssertEqual(b.classNames, (0..<10).map(String.init))
            // The folder is read class by class; compare each image with its original.
            for (original, read) in [(a.train, b.train), (a.test, b.test)] {
                XCTAssertEqual(read.count, original.count)
                XCTAssertEqual(read.classHistogram(), original.classHistogram())
                var order = Array(0..<original.count)
                order.sort { (original.labels[$0], $0) < (original.labels[$1], $1) }
                XCTAssertEqual(order.map { original.labels[$0] }, read.labels)
                for (k, i) in order.enumerated() {
                    let x = Array(original.image(i)), y = Array(read.image(k))
                    let meanError = Double(zip(x, y).reduce(0) { $0 + abs(Int($1.0) - Int($1.1)) }) / Double(x.count)
                    XCTAssertLessThan(meanError, 3, "\(a.name) image \(i): JPEG at quality 95 stays close")
                }
            }
        }
        // The folder is never overwritten, and a failed export leaves nothing behind.
        XCTAssertThrowsError(try DatasetFolder.writeImageFolder(domains, root: root)) { e in
            XCTAssertTrue("\(e)".contains("already exists"), "\(e)")
        }
        XCTAssertThrowsError(try DatasetFolder.writeImageFolder(domains, root: dir + "/q", quality: 0)) { e in
            XCTAssertTrue("\(e)".contains("1...100"), "\(e)")
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("partial") }
        XCTAssertEqual(leftovers, [])
    }
}
