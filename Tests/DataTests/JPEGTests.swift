import Foundation
import XCTest
@testable import Data

/// JPEG decoding: pixel-exact against libjpeg-turbo's `djpeg` and Pillow, CMYK as
/// Pillow converts it, EXIF orientation as Pillow's `exif_transpose`, and damaged
/// files refused with errors naming them.
final class JPEGTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "fedkit-jpeg-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: dir)
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let path = dir + "/" + name
        try Foundation.Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// A 37×29 picture with gradients, a checkerboard of edges and fine texture (odd
    /// sizes leave partial MCUs at the right and bottom), RGB or its luminance (as
    /// `cjpeg -grayscale` computes it).
    func picture(channels: Int) -> DecodedImage {
        let w = 37, h = 29
        var px = [UInt8]()
        for y in 0..<h {
            for x in 0..<w {
                let edge = (x / 6 + y / 5) % 2 == 0 ? 60 : 0
                let rgb = [x * 5 + edge, y * 6 + edge / 2, 150 + x * 2 - y * 3 + (x * y) % 7 * 4]
                if channels == 1 { px.append(UInt8((299 * rgb[0] + 587 * rgb[1] + 114 * rgb[2] + 500) / 1000)) } else { px += rgb.map { UInt8($0) } }
            }
        }
        return DecodedImage(width: w, height: h, channels: channels, pixels: px)
    }

    func testBaselineAndProgressiveGreyAndColourEqualDjpeg() throws {
        let ppm = try write(pnm(picture(channels: 3)), "colour.ppm")
        let pgm = try write(pnm(picture(channels: 1)), "grey.pgm")
        let cases: [(source: String, options: [String], channels: Int)] = [
            (ppm, ["-quality", "90"], 3),                                 // baseline 4:2:0
            (ppm, ["-quality", "75", "-sample", "2x1"], 3),               // 4:2:2
            (ppm, ["-quality", "95", "-sample", "1x1"], 3),               // 4:4:4
            (ppm, ["-progressive"], 3),
            (ppm, ["-progressive", "-sample", "1x1", "-quality", "50"], 3),
            (ppm, ["-optimize", "-restart", "1"], 3),                     // restart markers
            (ppm, ["-grayscale"], 1),
            (pgm, ["-quality", "85"], 1),
            (pgm, ["-progressive"], 1),
        ]
        for (k, c) in cases.enumerated() {
            let jpeg = dir + "/case\(k).jpg"
            _ = try JPEGTools.run("cjpeg", c.options + ["-outfile", jpeg, c.source])
            let ours = try ImageFile.decode(path: jpeg)
            let reference = try JPEGTools.djpeg(jpeg)
            let what = "cjpeg \(c.options.joined(separator: " "))"
            XCTAssertEqual(ours.channels, c.channels, what)
            XCTAssertEqual([ours.width, ours.height], [37, 29], what)
            assertPixels(ours.pixels, reference.pixels, what)
            // Lossy but close to the source: a decoder that scrambled planes would not be.
            let source = picture(channels: c.channels).pixels
            XCTAssertLessThan(Double(zip(ours.pixels, source).map { abs(Int($0) - Int($1)) }.reduce(0, +)) / Double(source.count), 12, what)
        }
    }

    func testPhotographsEqualDjpegAndPillow() throws {
        let summary = try ImageFixtures.json("photos.json")
        XCTAssertEqual(summary.count, 4)
        for (name, value) in summary.sorted(by: { $0.key < $1.key }) {
            let info = value as! [String: Any]
            let path = ImageFixtures.path("photo-\(name).jpg")
            let image = try ImageFile.decode(path: path)
            XCTAssertEqual([image.width, image.height, image.channels],
                           [info["width"] as! Int, info["height"] as! Int, info["channels"] as! Int], name)
            // Pillow's decode: sampled rows exactly, and the whole image by its CRC-32.
            let rowLength = image.width * image.channels
            for (y, hex) in (info["rows"] as! [String: String]) {
                let row = Int(y)!
                assertPixels(Array(image.pixels[(row * rowLength)..<((row + 1) * rowLength)]), bytes(hex: hex), "\(name) row \(row) vs Pillow")
            }
            XCTAssertEqual(crc32(image.pixels), (info["crc32"] as! NSNumber).uint32Value, "\(name): decode differs from Pillow's")
            if let reference = try? JPEGTools.djpeg(path) {
                assertPixels(image.pixels, reference.pixels, "\(name) vs djpeg")
            }
        }
    }

    func testCMYKConvertsToRGBAsPillowDoes() throws {
        let expected = try ImageFixtures.json("cmyk.json")
        let image = try ImageFile.decode(path: ImageFixtures.path("cmyk.jpg"))
        XCTAssertEqual([image.width, image.height, image.channels], [expected["width"] as! Int, expected["height"] as! Int, 3])
        let rgb = bytes(hex: expected["rgb"] as! String)
        print("CMYK JPEG vs Pillow convert(\"RGB\"): max difference \(maxDifference(image.pixels, rgb))")
        assertPixels(image.pixels, rgb, "CMYK JPEG vs Pillow")
        // Stored samples are inverted (Adobe): 255 everywhere is no ink (white), and
        // a stored K of 0 is full black whatever the other inks.
        XCTAssertEqual(JPEG.adobeCMYKToRGB([255, 255, 255, 255, 0, 128, 255, 0, 0, 255, 255, 255, 255, 0, 255, 127]),
                       [255, 255, 255, 0, 0, 0, 0, 255, 255, 127, 0, 127])
    }

    /// An APP1 Exif segment whose IFD0 holds a Make tag and then Orientation `value`.
    func exifSegment(orientation value: Int, littleEndian: Bool) -> [UInt8] {
        func u16(_ v: Int) -> [UInt8] { littleEndian ? [UInt8(v & 0xFF), UInt8(v >> 8)] : [UInt8(v >> 8), UInt8(v & 0xFF)] }
        func u32(_ v: Int) -> [UInt8] { littleEndian ? u16(v & 0xFFFF) + u16(v >> 16) : u16(v >> 16) + u16(v & 0xFFFF) }
        var tiff: [UInt8] = littleEndian ? [0x49, 0x49] : [0x4D, 0x4D]
        tiff += u16(42) + u32(8) + u16(2)
        tiff += u16(0x010F) + u16(2) + u32(4) + Array("Cam\0".utf8)   // Make, ASCII, inline
        tiff += u16(0x0112) + u16(3) + u32(1) + u16(value) + u16(0)   // Orientation, SHORT
        tiff += u32(0)                                                 // no next IFD
        let body = Array("Exif\0\0".utf8) + tiff
        return [0xFF, 0xE1] + [UInt8((body.count + 2) >> 8), UInt8((body.count + 2) & 0xFF)] + body
    }

    func testExifOrientationTurnsPixelsAsPillowDoes() throws {
        let jpeg = try ImageFixtures.bytes("tiny.jpg")
        let stored = try ImageFile.decode(jpeg, name: "tiny.jpg")
        XCTAssertEqual(ExifOrientation.read(jpeg: jpeg), .upright)
        let maps = try ImageFixtures.json("orientation.json")
        XCTAssertEqual([maps["width"] as! Int, maps["height"] as! Int], [stored.width, stored.height])
        let orientations = maps["orientations"] as! [String: Any]
        XCTAssertEqual(orientations.count, 8)
        var distinct = Set<[UInt8]>()
        for little in [true, false] {
            for value in 1...8 {
                let map = orientations[String(value)] as! [String: Any]
                let index = map["index"] as! [Int]
                var expected = [UInt8]()
                for i in index { expected += stored.pixels[(3 * i)..<(3 * i + 3)] }
                let tagged = [0xFF, 0xD8] + exifSegment(orientation: value, littleEndian: little) + Array(jpeg[2...])
                XCTAssertEqual(ExifOrientation.read(jpeg: tagged).value, value)
                let turned = try ImageFile.decode(tagged, name: "tagged.jpg")
                let what = "orientation \(value), \(little ? "II" : "MM")"
                XCTAssertEqual([turned.width, turned.height], [map["width"] as! Int, map["height"] as! Int], what)
                XCTAssertEqual(turned.pixels, expected, what)
                distinct.insert(turned.pixels)
            }
        }
        XCTAssertEqual(distinct.count, 8, "the eight orientations must give eight different images")
        // A damaged Exif block (bad byte-order mark, value out of range) leaves the image as stored.
        var damaged = exifSegment(orientation: 6, littleEndian: true)
        damaged[10] = 0x58
        XCTAssertEqual(try ImageFile.decode([0xFF, 0xD8] + damaged + Array(jpeg[2...]), name: "x.jpg"), stored)
        let outOfRange = [0xFF, 0xD8] + exifSegment(orientation: 9, littleEndian: false) + Array(jpeg[2...])
        XCTAssertEqual(try ImageFile.decode(outOfRange, name: "x.jpg"), stored)
    }

    func testTruncatedAndCorruptJPEGsAreRefusedNamingTheFile() throws {
        let whole = try ImageFixtures.bytes("photo-chelsea.jpg")
        // Cut in the entropy-coded data: libjpeg's warning "Premature end of JPEG file".
        let cut = try write(Array(whole[0..<(whole.count / 2)]), "cut.jpg")
        assertImageError(cut, "Premature end of JPEG file") { try ImageFile.decode(path: cut) }
        // Only the headers: no scan at all.
        let headers = try write(Array(whole[0..<700]), "headers.jpg")
        assertImageError(headers, "Premature end of JPEG file") { try ImageFile.decode(path: headers) }
        // A start of image followed by garbage.
        let garbage = try write([0xFF, 0xD8, 0xFF] + [UInt8](repeating: 0x42, count: 200), "garbage.jpg")
        assertImageError(garbage, "corrupt JPEG (header)") { try ImageFile.decode(path: garbage) }
        // An unexpected restart marker in the middle of the scan data (a libjpeg warning).
        var marked = whole
        let middle = whole.count * 2 / 3
        marked[middle] = 0xFF; marked[middle + 1] = 0xD3
        let bad = try write(marked, "marked.jpg")
        assertImageError(bad, "Corrupt JPEG data") { try ImageFile.decode(path: bad) }
    }

    func testFormatIsSniffedFromContentNotName() throws {
        let png = PNG.encodeRGB(width: 2, height: 1, rgb: [1, 2, 3, 4, 5, 6])
        let misnamed = try write(png, "picture.jpg")
        XCTAssertEqual(try ImageFile.decode(path: misnamed).pixels, [1, 2, 3, 4, 5, 6])
        let jpeg = try ImageFixtures.bytes("tiny.jpg")
        XCTAssertEqual(ImageFile.format(of: jpeg), .jpeg)
        XCTAssertEqual(ImageFile.format(of: png), .png)
        let text = try write(Array("label,path\n3,a.png\n".utf8), "list.png")
        assertImageError(text, "not a JPEG or PNG image") { try ImageFile.decode(path: text) }
        let empty = try write([], "empty.jpg")
        assertImageError(empty, "not a JPEG or PNG image") { try ImageFile.decode(path: empty) }
        assertImageError(dir + "/missing.jpg", "no such file") { try ImageFile.decode(path: self.dir + "/missing.jpg") }
    }
}
