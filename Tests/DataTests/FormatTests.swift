import Foundation
import XCTest
@testable import Data

final class FormatTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "fedkit-data-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func path(_ name: String) -> String { dir + "/" + name }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        try Foundation.Data(bytes).write(to: URL(fileURLWithPath: path(name)))
        return path(name)
    }

    /// A small dataset with distinct, position-dependent pixels.
    func sample(count: Int, channels: Int, height: Int, width: Int, classes: Int = 10) -> Dataset {
        let size = channels * height * width
        let px = (0..<(count * size)).map { UInt8(($0 * 37 + $0 / size * 11) % 256) }
        return Dataset(domain: "s", channels: channels, height: height, width: width, pixels: px,
                       labels: (0..<count).map { Int32(($0 * 3) % classes) }, classCount: classes)
    }

    /// Asserts `body` throws a DataError whose text names `file` and contains `words`.
    func assertFails(_ file: String, _ words: String, _ body: () throws -> Any,
                     line: UInt = #line) {
        assertImageError(file, words, body, line: line)
    }

    // MARK: IDX

    func testIDXRoundTripAndConversion() throws {
        let ds = sample(count: 7, channels: 1, height: 5, width: 4)
        try IDX.write(ds, images: path("a-images"), labels: path("a-labels"))
        let back = try IDX.load(images: path("a-images"), labels: path("a-labels"), domain: "s", shape: nil, classCount: 10)
        XCTAssertEqual(back, ds)
        let model = try IDX.load(images: path("a-images"), labels: path("a-labels"), domain: "usps")
        XCTAssertEqual([model.channels, model.height, model.width], [3, 28, 28])
        XCTAssertEqual(model.labels, ds.labels)
        XCTAssertEqual(model.domain, "usps")
        let img = Array(model.image(2))
        XCTAssertEqual(img[0..<784], img[784..<1568], "grey not repeated to 3 channels")
        // Same size: channels are repeated without resampling.
        let repeated = try IDX.load(images: path("a-images"), labels: path("a-labels"), domain: "s",
                                    shape: ImageShape(channels: 3, height: 5, width: 4))
        XCTAssertEqual(Array(repeated.image(1)), Array(ds.image(1)) + Array(ds.image(1)) + Array(ds.image(1)))
    }

    func testIDXGzipWrittenByGzip() throws {
        let gz = [UInt8](Foundation.Data(base64Encoded: gzIDX)!)
        let images = try write(gz, "train-images-idx3-ubyte.gz")
        try Foundation.Data(IDX.encode((0..<30).map { UInt8($0 % 10) }, dimensions: [30])).write(to: URL(fileURLWithPath: path("labels")))
        let ds = try IDX.load(images: images, labels: path("labels"), domain: "g", shape: nil)
        XCTAssertEqual(ds.count, 30)
        XCTAssertEqual([ds.channels, ds.height, ds.width], [1, 8, 8])
        for i in 0..<30 {
            for y in 0..<8 {
                for x in 0..<8 {
                    let expected = (x + y + i) % 3 != 0 ? (i * 7 + y * y * 5 + x * 3) % 256 : 0
                    XCTAssertEqual(Int(ds.pixels[i * 64 + y * 8 + x]), expected)
                }
            }
        }
        // A damaged stream fails naming the file.
        var broken = gz
        broken[broken.count - 12] ^= 0xFF
        let bad = try write(broken, "broken.gz")
        assertFails(bad, "gzip") { try IDX.load(images: bad, labels: self.path("labels"), domain: "g") }
        let cut = try write(Array(gz.prefix(gz.count / 2)), "cut.gz")
        assertFails(cut, "gzip") { try IDX.load(images: cut, labels: self.path("labels"), domain: "g") }
    }

    func testIDXMalformedFiles() throws {
        let ds = sample(count: 6, channels: 1, height: 3, width: 3)
        try IDX.write(ds, images: path("img"), labels: path("lab"))
        let labels = path("lab"), images = path("img")
        var bytes = [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: images)))
        bytes[0] = 0x12
        let magic = try write(bytes, "magic")
        assertFails(magic, "wrong magic") { try IDX.load(images: magic, labels: labels, domain: "x") }
        let truncated = try write(Array(IDX.encode(ds.pixels, dimensions: [6, 3, 3]).dropLast(5)), "short")
        assertFails(truncated, "truncated") { try IDX.load(images: truncated, labels: labels, domain: "x") }
        let fewLabels = try write(IDX.encode([1, 2, 3, 4, 5], dimensions: [5]), "five-labels")
        assertFails(fewLabels, "6 images but 5 labels") { try IDX.load(images: images, labels: fewLabels, domain: "x") }
        var floats = IDX.encode([UInt8](repeating: 0, count: 6 * 9 * 4), dimensions: [6, 3, 3 * 4])
        floats[2] = 0x0D
        let float = try write(floats, "float-idx")
        assertFails(float, "unsupported element type") { try IDX.load(images: float, labels: labels, domain: "x") }
        // A header announcing more data than any machine holds is an error, not a crash.
        let huge = try write([0, 0, 0x08, 4, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3], "huge")
        assertFails(huge, "impossible dimensions") { try IDX.load(images: huge, labels: labels, domain: "x") }
        assertFails(path("nowhere"), "no such file") { try IDX.load(images: self.path("nowhere"), labels: labels, domain: "x") }
    }

    // MARK: NumPy

    func testNPYPairChannelsLastAndIntegerLabels() throws {
        // 2 images, 3×4 RGB stored NHWC: value at (i, y, x, c) = ((i*3 + y)*4 + x)*3 + c.
        let x = (0..<(2 * 3 * 4 * 3)).map { UInt8($0) }
        let xs = try write(NumPy.encode(descr: "|u1", shape: [2, 3, 4, 3], data: x), "x.npy")
        let y32: [UInt8] = [5, 0, 0, 0, 9, 0, 0, 0]
        let ys = try write(NumPy.encode(descr: "<i4", shape: [2, 1], data: y32), "y.npy")
        let ds = try NumPy.load(images: xs, labels: ys, domain: "n", shape: nil)
        XCTAssertEqual(ds.labels, [5, 9])
        XCTAssertEqual(ds.classCount, 10)
        XCTAssertEqual([ds.channels, ds.height, ds.width], [3, 3, 4])
        for i in 0..<2 { for c in 0..<3 { for yy in 0..<3 { for xx in 0..<4 {
            XCTAssertEqual(Int(ds.pixels[((i * 3 + c) * 3 + yy) * 4 + xx]), ((i * 3 + yy) * 4 + xx) * 3 + c)
        } } } }
    }

    func testNPYFloatImagesScaledAndNCHW() throws {
        // One grey 2×2 image in NCHW, values 0, 1/3, 2/3, 1.
        var data = [UInt8]()
        for v: Float in [0, 1.0 / 3, 2.0 / 3, 1] { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
        let xs = try write(NumPy.encode(descr: "<f4", shape: [1, 1, 2, 2], data: data), "f.npy")
        let ys = try write(NumPy.encode(descr: "|u1", shape: [1], data: [3]), "l.npy")
        let ds = try NumPy.load(images: xs, labels: ys, domain: "f", shape: nil)
        XCTAssertEqual(ds.pixels, [0, 85, 170, 255])
        let up = try NumPy.load(images: xs, labels: ys, domain: "f", shape: ImageShape(channels: 3, height: 4, width: 4))
        XCTAssertEqual(up.count, 1)
        // Bilinear, pixel centres aligned: the corners keep the corner values.
        XCTAssertEqual(up.pixels[0], 0)
        XCTAssertEqual(up.pixels[15], 255)
        XCTAssertEqual(up.pixels[16], 0)  // second channel repeats the first
    }

    func testNPZStoredRoundTripAndNumPyCompressed() throws {
        let ds = sample(count: 5, channels: 3, height: 6, width: 7)
        try NumPy.writeNPZ(ds, to: path("d.npz"))
        XCTAssertEqual(try NumPy.load(npz: path("d.npz"), domain: "s", shape: nil, classCount: 10), ds)
        // np.savez_compressed(images=uint8 (2, 3, 4, 3) NHWC, labels=int64 [7, 2]): deflated, zip64 headers.
        let npz = try write([UInt8](Foundation.Data(base64Encoded: numpyCompressedNPZ)!), "c.npz")
        let c = try NumPy.load(npz: npz, domain: "c", shape: nil)
        XCTAssertEqual(c.labels, [7, 2])
        XCTAssertEqual([c.channels, c.height, c.width], [3, 3, 4])
        XCTAssertEqual(c.pixels[23], 34)  // image 0, channel 1, y 2, x 3: ((0·3 + 2)·4 + 3)·3 + 1
    }

    func testNumPyMalformedFiles() throws {
        let labels = try write(NumPy.encode(descr: "<i8", shape: [3], data: [UInt8](repeating: 0, count: 24)), "y.npy")
        let images = try write(NumPy.encode(descr: "|u1", shape: [3, 2, 2], data: [UInt8](repeating: 1, count: 12)), "x.npy")
        XCTAssertEqual(try NumPy.load(images: images, labels: labels, domain: "z").count, 3)
        let magic = try write(Array("not numpy at all".utf8), "magic.npy")
        assertFails(magic, "wrong magic") { try NumPy.load(images: magic, labels: labels, domain: "z") }
        let complex = try write(NumPy.encode(descr: "<c8", shape: [3, 2, 2], data: [UInt8](repeating: 0, count: 96)), "c.npy")
        assertFails(complex, "unsupported element type '<c8'") { try NumPy.load(images: complex, labels: labels, domain: "z") }
        let bigEndian = try write(NumPy.encode(descr: ">f4", shape: [3, 2, 2], data: [UInt8](repeating: 0, count: 48)), "be.npy")
        assertFails(bigEndian, "unsupported element type") { try NumPy.load(images: bigEndian, labels: labels, domain: "z") }
        let floatLabels = try write(NumPy.encode(descr: "<f4", shape: [3], data: [UInt8](repeating: 0, count: 12)), "fl.npy")
        assertFails(floatLabels, "labels must be integers") { try NumPy.load(images: images, labels: floatLabels, domain: "z") }
        let short = try write(Array(NumPy.encode(descr: "|u1", shape: [3, 2, 2], data: [UInt8](repeating: 1, count: 12)).dropLast(1)), "short.npy")
        assertFails(short, "truncated") { try NumPy.load(images: short, labels: labels, domain: "z") }
        let four = try write(NumPy.encode(descr: "<i8", shape: [4], data: [UInt8](repeating: 0, count: 32)), "four.npy")
        assertFails(four, "3 images but 4 labels") { try NumPy.load(images: images, labels: four, domain: "z") }
        let hugeShape = try write(Array(NumPy.encode(descr: "<f8", shape: [Int.max / 4, 1 << 20, 3], data: [])), "huge.npy")
        assertFails(hugeShape, "impossible shape") { try NumPy.load(images: hugeShape, labels: labels, domain: "z") }
        let notZip = try write(Array("PK but not really a zip".utf8), "bad.npz")
        assertFails(notZip, "bad.npz") { try NumPy.load(npz: notZip, domain: "z") }
        let wrongNames = try write(Zip.storedArchive([("a.npy", [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: images))))]), "names.npz")
        assertFails(wrongNames, "expected x and y") { try NumPy.load(npz: wrongNames, domain: "z") }
    }

    // MARK: CIFAR-10

    func testCIFARRoundTripResizeAndTruncation() throws {
        let ds = sample(count: 3, channels: 3, height: 32, width: 32)
        let bin = try write(CIFAR10.encode(ds), "data_batch_1.bin")
        let back = try CIFAR10.load(batches: [bin], domain: "s")
        XCTAssertEqual(back, ds)
        let two = try CIFAR10.load(batches: [bin, bin], domain: "s")
        XCTAssertEqual(two.count, 6)
        let small = try CIFAR10.load(batches: [bin], domain: "s", shape: .digits)
        XCTAssertEqual([small.channels, small.height, small.width, small.count], [3, 28, 28, 3])
        let cut = try write(Array(CIFAR10.encode(ds).dropLast(100)), "cut.bin")
        assertFails(cut, "truncated") { try CIFAR10.load(batches: [cut], domain: "s") }
        var wrong = CIFAR10.encode(ds)
        wrong[3073] = 57
        let hundred = try write(wrong, "c100.bin")
        assertFails(hundred, "label 57") { try CIFAR10.load(batches: [hundred], domain: "s") }
    }

    // MARK: folders

    func testDomainFolderRoundTripAndLayouts() throws {
        let domains = Digits5.makeDomains([.usps, .svhn], trainCount: 20, testCount: 10, seed: 3)
        try DatasetFolder.write(domains, root: path("digits"))
        XCTAssertEqual(try DatasetFolder.load(root: path("digits")), domains.sorted { $0.name < $1.name })
        XCTAssertEqual(try DatasetFolder.load(root: path("digits"), domains: ["usps", "svhn"]), domains)
        // An MNIST-style IDX folder with t10k- names, gzip or not, grey 28×28.
        let grey = sample(count: 10, channels: 1, height: 28, width: 28)
        try FileManager.default.createDirectory(atPath: path("digits/mnist"), withIntermediateDirectories: true)
        try IDX.write(grey, images: path("digits/mnist/train-images-idx3-ubyte"), labels: path("digits/mnist/train-labels-idx1-ubyte"))
        try IDX.write(grey, images: path("digits/mnist/t10k-images-idx3-ubyte"), labels: path("digits/mnist/t10k-labels-idx1-ubyte"))
        let loaded = try DatasetFolder.load(root: path("digits"))
        XCTAssertEqual(loaded.map(\.name), ["mnist", "svhn", "usps"])
        XCTAssertEqual(loaded[0].test.channels, 3)
        XCTAssertEqual(loaded[0].train.labels, grey.labels)
        assertFails("cifar", "no sub-folder for domain") {
            try DatasetFolder.load(root: self.path("digits"), domains: ["usps", "cifar"])
        }
        try FileManager.default.createDirectory(atPath: path("digits/empty"), withIntermediateDirectories: true)
        assertFails(path("digits/empty"), "no train data") { try DatasetFolder.load(root: self.path("digits")) }
        assertFails(path("nothing"), "no such dataset folder") { try DatasetFolder.load(root: self.path("nothing")) }
    }

    // MARK: PNG

    func testPNGIsValidAndDecodes() throws {
        let rgb = (0..<(5 * 3 * 3)).map { UInt8($0 * 5) }
        let png = PNG.encodeRGB(width: 5, height: 3, rgb: rgb)
        XCTAssertEqual(Array(png[0..<8]), [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        XCTAssertEqual(Array(png.suffix(12)), [0, 0, 0, 0, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82])
        // IDAT's zlib stream inflates back to the filtered scanlines.
        let idatLength = Int(png.bigEndianUInt32(at: 33))
        let zlib = Array(png[41..<(41 + idatLength)])
        let raw = try zlib.withUnsafeBufferPointer { try inflate($0, start: 2).data }
        var expected = [UInt8]()
        for y in 0..<3 { expected.append(0); expected += rgb[(y * 15)..<((y + 1) * 15)] }
        XCTAssertEqual(raw, expected)
        XCTAssertEqual(png.bigEndianUInt32(at: 41 + idatLength - 4), adler32(expected))
        XCTAssertEqual(crc32(Array("123456789".utf8)), 0xCBF4_3926)
    }

    func testSampleGridShowsEveryDomain() throws {
        let sets = Digits5.Domain.allCases.map { Digits5.generate(domain: $0, count: 20, seed: 1) }
        let grid = SampleGrid.render(sets, perClass: 1, scale: 2)
        XCTAssertEqual(grid.width, (10 * 29 + 1) * 2)
        XCTAssertEqual(grid.height, (5 * 29 + 1) * 2)
        try SampleGrid.writePNG(sets, to: path("grid.png"))
        XCTAssertGreaterThan(try FileManager.default.attributesOfItem(atPath: path("grid.png"))[.size] as! Int, 1000)
    }
}

/// np.savez_compressed(images=uint8 (2, 3, 4, 3), labels=int64 [7, 2]), written by NumPy 2.
private let numpyCompressedNPZ = "UEsDBC0AAAAIAAAAIQBv8Oh7//////////8KABQAaW1hZ2VzLm5weQEAEADIAAAAAAAAAJMAAAAAAAAAm+wX6hsQychQxlCtnpJanFykbqWgXlNqqK6joJ6WX1RSlJgXn1+UkgoSd0vMKU4FihdnJBakAvkaRjoKxjoKJkBSU0ehVoEMwMXAyMTMwsrGzsHJxc3Dy8cvICgkLCIqJi4hKSUtIysnr6CopKyiqqauoamlraOrp29gaGRsYmpmbmFpZW1ja2fv4Ojk7OLq5g4AUEsDBC0AAAAIAAAAIQDolY26//////////8KABQAbGFiZWxzLm5weQEAEACQAAAAAAAAAEoAAAAAAAAAm+wX6hsQychQxlCtnpJanFykbqWgbpNpoa6joJ6WX1RSlJgXn1+UkgoSd0vMKU4FihdnJBakAvkaRjqaOgq1ChQALnYGCGCC0gBQSwECLQMtAAAACAAAACEAb/Doe5MAAADIAAAACgAAAAAAAAAAAAAAgAEAAAAAaW1hZ2VzLm5weVBLAQItAy0AAAAIAAAAIQDolY26SgAAAJAAAAAKAAAAAAAAAAAAAACAAc8AAABsYWJlbHMubnB5UEsFBgAAAAACAAIAcAAAAFUBAAAAAA=="

/// gzip -9 of an IDX file of 30 grey 8×8 images (dynamic Huffman blocks).
private let gzIDX = "H4sIAAAAAAACAz3Vd1zIeRzH8RcOccTZO8RZmYWMEKFsmUVRRgilKCOUGVnZKzOhZEQZ2XsmRNkOOZzudDjrjL6/7/f7++P37+/xfrwfz8/7CxZ5gEo5n4Xx5clHoSKUzGuB5W+ULleCchWx/h0a2NKsJW179MJtIN7DpjJzDgsWw8EjnDzDpQ+f+J6L/AXzF6RoccpWKESxkpTP+W2lKtSoTQO7pji0oYNLPzwGM3wkzJ3PkmWsST7O2QtcS/2f3Hn51RJLSpSmYmUoVRarqtSsWp069bBr2gJHJzp1Ba+hjBpDYMQilq8iatNpLl7hRhrkK0CRYpShTHmqVKO2TG1Tvxb1G2HfAto7060n/YaNYOw4gicvZfU6NkfD1evczuBRwcIUL0UFqwpWVK9JvYYytS3YNqFla9q7dMG1DwM8RxMwgSnTYP1Gtu1gd+ot7j7gaaboisrWWFPLhkaNkalxaNqcNu1w6dKDvm4M8oagSUyfQfimrezcRUJiOg+f8OIVoqtqNahL3QY0aUZrmdrRqRVOHenaA9w9GDKc0ZNV8duJ30vSYfjjOa+zeCe6qkNDu4Z2NHegXQeZ2hmcO9OzN+6eXviMwj8wTBXPvgMcOcaZzJf8nc3HL6IrGttjTytHOnZCpsa1S3f69MfTaxi+YxkfDKr4xEMcP8WFy2/49wNfv5s+aNuezt3oLVP3dVNcwC+AiVMIW6yKP8rpc1xJgf8+8yM3FtpHBxe6u9J/gEztgeLiFxhEyHRmh69UxXP+EtdvkvHlmxSrfXSlV18GDkKmxkdxCZpM6EzmLQBV/OVr3LrDg8fCrBCrfdDPncFDGClT+45VXGDWXBYuYWW0Kv4G6fd48gxhVojVPgZ4MtSHMf4ydQCKy6zwCCKXszYqThXP/Uc8/5MsYVaI1T68GeHLuPHI1IQoLhGLWbGaDZtBFf/4KS//Ivu9MCvEah+M9mPCRKbJ1KEzzTtds54t24g7rIp/wZt/yDlaYVaI1T78A5kUwozZMvVc806jNhGzkz0JJ1XxvH3H55yjFWaFWO0jmKmhzJmHTE2kvtNoYuPZnwSq+Pcf+SaOVpgVYrUPwmYxfyHLZOoVq8073b3PmJoUVfxXcv1CztEKs0Ks9jE7nEWRrForU6837zQhEWNqbqviUQMnzAqx2scClq5g3QZkamL0nR7mhDE1qOILqIETZoVY7YOVa9i4hR0ydWy8eadnzhtT80wVX1QNnDArxGofa6PYGsOuPTL1PvNOL1zGmJrXqng1yzbCrBCrfWxmeyx79yNTk6zvNIU0Y2pQxatZthVmhVjtg7jdHDjIMZn6xGnzTjPuG1PzSRWvZhlhVojVPvYkcCiZU2dl6vPmnT54jDE1P1TxapYdhVkhVvtI4ugJzl1EpiZV3+kzXhlTgypezbKzMCvEah/GY3SVmzJ1Wrp5p1lvjakprIpXs4wwK8RqH8ZjxJ27MvV9806z32NMjfkeqoETZoVY7cN4jO49RKYmU9+peh7N91DNsocwK8RqHz8BBFK5qZAHAAA="
