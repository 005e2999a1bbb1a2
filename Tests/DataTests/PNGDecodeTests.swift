import Foundation
import XCTest
@testable import Data

/// PNG decoding against the pixels Pillow reads from the fixture PNGs (every colour
/// type and bit depth, plain and Adam7, all five filters), and damaged files refused.
final class PNGDecodeTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "fedkit-png-\(UUID().uuidString)"
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

    func testEveryColourTypeAndDepthPlainAndInterlacedEqualsPillow() throws {
        let cases = try ImageFixtures.json("png.json")
        // 4 grey depths + RGB + 4 palette depths + grey+alpha + RGBA, each plain and Adam7.
        XCTAssertEqual(cases.count, 22)
        for (file, value) in cases.sorted(by: { $0.key < $1.key }) {
            let info = value as! [String: Any]
            let image = try ImageFile.decode(path: ImageFixtures.path(file))
            XCTAssertEqual([image.width, image.height, image.channels],
                           [info["width"] as! Int, info["height"] as! Int, info["channels"] as! Int], file)
            assertPixels(image.pixels, bytes(hex: info["pixels"] as! String), file)
        }
        // The interlaced and plain files hold different bytes but the same image.
        let plain = try ImageFixtures.bytes("png-rgb8.png"), adam7 = try ImageFixtures.bytes("png-rgb8-adam7.png")
        XCTAssertNotEqual(plain, adam7)
        XCTAssertEqual(try ImageFile.decode(plain, name: "a"), try ImageFile.decode(adam7, name: "b"))
    }

    func testEncoderOutputDecodesBack() throws {
        let rgb = (0..<(7 * 5 * 3)).map { UInt8(($0 * 29) % 256) }
        let image = try ImageFile.decode(PNG.encodeRGB(width: 7, height: 5, rgb: rgb), name: "grid.png")
        XCTAssertEqual(image, DecodedImage(width: 7, height: 5, channels: 3, pixels: rgb))
    }

    func testSixteenBitPNGIsRefused() throws {
        let path = ImageFixtures.path("png-grey16.png")
        assertImageError(path, "16-bit PNG is not supported; convert to 8-bit") { try ImageFile.decode(path: path) }
    }

    func testTruncatedPNGIsRefused() throws {
        let whole = try ImageFixtures.bytes("png-rgb8.png")
        for length in [8, 20, 40, whole.count / 2, whole.count - 12, whole.count - 1] {
            let path = try write(Array(whole[0..<length]), "cut-\(length).png")
            assertImageError(path, "truncated") { try ImageFile.decode(path: path) }
        }
    }

    /// `png` with the data of its first chunk of `type` replaced, the CRC recomputed.
    func replacingChunk(_ png: [UInt8], _ type: String, with data: [UInt8]) -> [UInt8] {
        var p = 8
        while p + 8 <= png.count {
            let length = Int(png.bigEndianUInt32(at: p))
            if String(decoding: png[(p + 4)..<(p + 8)], as: UTF8.self) == type {
                var chunk = [UInt8]()
                chunk.appendBigEndian(UInt32(data.count))
                chunk += Array(type.utf8) + data
                chunk.appendBigEndian(crc32(Array(type.utf8) + data))
                return Array(png[0..<p]) + chunk + Array(png[(p + 12 + length)...])
            }
            p += 12 + length
        }
        preconditionFailure("no \(type) chunk")
    }

    func testCorruptPNGsAreRefusedNamingTheFile() throws {
        let whole = try ImageFixtures.bytes("png-rgb8.png")
        // A flipped bit in IHDR's width: its CRC no longer matches.
        var flipped = whole
        flipped[18] ^= 0x01
        let badCRC = try write(flipped, "bad-crc.png")
        assertImageError(badCRC, "PNG chunk IHDR at byte 8 fails its CRC-32 check") { try ImageFile.decode(path: badCRC) }
        // Image data that is not a zlib stream, with a correct CRC.
        let noise = try write(replacingChunk(whole, "IDAT", with: [0x78, 0x9C, 0xFF, 0xFF, 0x12, 0x34]), "noise.png")
        assertImageError(noise, "corrupt PNG image data") { try ImageFile.decode(path: noise) }
        // Image data that inflates to too few bytes.
        let short = try write(replacingChunk(whole, "IDAT", with: PNG.zlibStored([0, 1, 2, 3])), "short.png")
        assertImageError(short, "inflates to 4 bytes") { try ImageFile.decode(path: short) }
        // A filter type beyond 4.
        let rowBytes = 1 + 13 * 3
        var rows = [UInt8](repeating: 0, count: 11 * rowBytes)
        rows[rowBytes * 2] = 7
        let filter = try write(replacingChunk(whole, "IDAT", with: PNG.zlibStored(rows)), "filter.png")
        assertImageError(filter, "scanline 2 has filter type 7") { try ImageFile.decode(path: filter) }
        // A palette image whose pixels index past its palette.
        let palette = try ImageFixtures.bytes("png-palette4.png")
        let small = try write(replacingChunk(palette, "PLTE", with: [1, 2, 3]), "small-palette.png")
        assertImageError(small, "palette index") { try ImageFile.decode(path: small) }
        // A 16-bit colour type 2 header, and an impossible bit depth.
        var ihdr = Array(whole[16..<29])
        ihdr[8] = 3
        let depth = try write(replacingChunk(whole, "IHDR", with: ihdr), "depth.png")
        assertImageError(depth, "bit depth 3 is not allowed for colour type 2") { try ImageFile.decode(path: depth) }
        ihdr[8] = 16
        let deep = try write(replacingChunk(whole, "IHDR", with: ihdr), "deep.png")
        assertImageError(deep, "16-bit PNG is not supported") { try ImageFile.decode(path: deep) }
        // A header announcing more pixels than the reader accepts.
        ihdr[8] = 8
        ihdr[0] = 0x7F
        let huge = try write(replacingChunk(whole, "IHDR", with: ihdr), "huge.png")
        assertImageError(huge, "exceeds the limit") { try ImageFile.decode(path: huge) }
        // The signature with garbage after it: the first "chunk" is longer than the file.
        let garbage = try write(Array(whole[0..<8]) + [UInt8](repeating: 0x41, count: 40), "garbage.png")
        assertImageError(garbage, "truncated") { try ImageFile.decode(path: garbage) }
    }
}
