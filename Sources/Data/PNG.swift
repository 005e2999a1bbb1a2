// A minimal PNG encoder (8-bit RGB, no interlace) so sample grids can be viewed in
// any browser without a system image library. The image data goes into a zlib
// stream of stored (uncompressed) deflate blocks, framed by Adler-32, and every
// chunk carries its CRC-32 (ISO 3309 / ITU-T V.42 polynomial; both checksums come
// from zlib, see Inflate.swift).

import Foundation

/// Encodes images as PNG.
public enum PNG {
    /// PNG bytes of an 8-bit RGB image.
    /// - Parameters:
    ///   - width: pixels per row.
    ///   - height: rows.
    ///   - rgb: H×W×3 bytes (interleaved, row-major).
    public static func encodeRGB(width: Int, height: Int, rgb: [UInt8]) -> [UInt8] {
        precondition(rgb.count == width * height * 3, "PNG.encodeRGB: \(rgb.count) bytes for \(width)×\(height)×3")
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        var header = [UInt8]()
        header.appendBigEndian(UInt32(width))
        header.appendBigEndian(UInt32(height))
        header += [8, 2, 0, 0, 0]  // bit depth 8, colour type RGB, deflate, filter 0, no interlace
        appendChunk(&out, "IHDR", header)
        // Scanlines, each prefixed with filter type 0 (none).
        var raw = [UInt8]()
        raw.reserveCapacity(height * (1 + 3 * width))
        for y in 0..<height {
            raw.append(0)
            raw += rgb[(y * width * 3)..<((y + 1) * width * 3)]
        }
        appendChunk(&out, "IDAT", zlibStored(raw))
        appendChunk(&out, "IEND", [])
        return out
    }

    static func appendChunk(_ out: inout [UInt8], _ type: String, _ data: [UInt8]) {
        out.appendBigEndian(UInt32(data.count))
        let typed = Array(type.utf8) + data
        out += typed
        out.appendBigEndian(crc32(typed))
    }

    /// A zlib stream (RFC 1950) holding `data` in stored deflate blocks (RFC 1951).
    static func zlibStored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var offset = 0
        repeat {
            let n = min(65_535, data.count - offset)
            let final: UInt8 = offset + n == data.count ? 1 : 0
            out.append(final)  // BTYPE 00
            out.append(UInt8(n & 0xFF)); out.append(UInt8(n >> 8))
            out.append(UInt8(~n & 0xFF)); out.append(UInt8((~n >> 8) & 0xFF))
            out += data[offset..<(offset + n)]
            offset += n
        } while offset < data.count
        out.appendBigEndian(adler32(data))
        return out
    }
}

extension Array where Element == UInt8 {
    mutating func appendBigEndian(_ v: UInt32) {
        append(UInt8(v >> 24)); append(UInt8((v >> 16) & 0xFF)); append(UInt8((v >> 8) & 0xFF)); append(UInt8(v & 0xFF))
    }
}
