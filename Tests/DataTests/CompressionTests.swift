import Foundation
import XCTest
@testable import Data

/// gzip, raw deflate and zlib streams through the system zlib: members, trailing
/// bytes, and every kind of damage reported with the file's name and zlib's reason.
final class CompressionTests: XCTestCase {
    /// `gzip -9` of "hello gzip hello gzip hello gzip\n".
    let hello = [UInt8](Foundation.Data(base64Encoded: "H4sIAAAAAAACA8tIzcnJV0ivyixQyMDG5AIA9Aik0SEAAAA=")!)
    /// `gzip -9` of "second member\n".
    let second = [UInt8](Foundation.Data(base64Encoded: "H4sIAAAAAAACAytOTc7PS1HITc1NSi3iAgA2GEsODgAAAA==")!)

    func testGzipMembersAndTrailingBytes() throws {
        XCTAssertEqual(String(decoding: try gunzip(hello), as: UTF8.self), "hello gzip hello gzip hello gzip\n")
        XCTAssertEqual(String(decoding: try gunzip(hello + second), as: UTF8.self),
                       "hello gzip hello gzip hello gzip\nsecond member\n")
        // Zero padding after the last member (tape blocks) is ignored, as gzip does.
        XCTAssertEqual(try gunzip(hello + [0, 0, 0, 0]), try gunzip(hello))
        XCTAssertEqual(try gunzipIfNeeded(Array("plain".utf8), path: "p"), Array("plain".utf8))
    }

    func testCorruptGzipIsRefusedWithZlibsReason() throws {
        let name = "data/mnist/train-images-idx3-ubyte.gz"
        var crc = hello
        crc[crc.count - 8] ^= 0x01       // the trailer's CRC-32
        assertImageError(name, "corrupt gzip data: incorrect data check") { try gunzipIfNeeded(crc, path: name) }
        var length = hello
        length[length.count - 4] ^= 0x01  // the trailer's length
        assertImageError(name, "corrupt gzip data: incorrect length check") { try gunzipIfNeeded(length, path: name) }
        let cut = Array(hello[0..<(hello.count - 5)])
        assertImageError(name, "corrupt gzip data: unexpected end of compressed data") { try gunzipIfNeeded(cut, path: name) }
        var header = hello
        header[2] = 7                      // compression method other than deflate
        assertImageError(name, "corrupt gzip data: unknown compression method") { try gunzipIfNeeded(header, path: name) }
        // A damaged second member is not silently dropped.
        var tail = second
        tail[tail.count - 8] ^= 0x01
        assertImageError(name, "incorrect data check") { try gunzipIfNeeded(self.hello + tail, path: name) }
    }

    func testRawDeflateAndZlibFraming() throws {
        // The raw deflate stream inside the gzip member starts after its 10-byte header.
        let raw = try hello.withUnsafeBufferPointer { try inflate($0, start: 10) }
        XCTAssertEqual(String(decoding: raw.data, as: UTF8.self), "hello gzip hello gzip hello gzip\n")
        XCTAssertEqual(raw.end, hello.count - 8, "the stream ends where the trailer begins")
        // A zlib stream of stored blocks, larger than one block, with its Adler-32 checked.
        let data = (0..<150_000).map { UInt8(($0 * 31) % 251) }
        var zlib = PNG.zlibStored(data)
        XCTAssertEqual(try zlib.withUnsafeBufferPointer { try decompress($0, framing: .zlib).data }, data)
        zlib[zlib.count - 1] ^= 0x01
        XCTAssertThrowsError(try zlib.withUnsafeBufferPointer { try decompress($0, framing: .zlib) }) { error in
            XCTAssertEqual((error as? InflateError)?.reason, "incorrect data check")
        }
        // Checksums as zlib computes them.
        XCTAssertEqual(crc32(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(crc32(Array("6789".utf8), initial: crc32(Array("12345".utf8))), 0xCBF4_3926)
        XCTAssertEqual(crc32([UInt8]()), 0)
        XCTAssertEqual(crc32([UInt8](), initial: 0x1234_5678), 0x1234_5678)
        XCTAssertEqual(adler32(Array("Wikipedia".utf8)), 0x11E6_0398)
    }
}
