// Decompression of deflate streams (RFC 1951), zlib streams (RFC 1950) and gzip
// files (RFC 1952) through the system zlib: `*.gz` IDX files, deflated `.npz`
// entries and PNG image data. zlib checks the gzip CRC-32 and length and the zlib
// Adler-32; this file only frames the calls and turns zlib's status into errors.

import CZlib

/// Why a compressed stream could not be decoded (zlib's message, or what ended early).
struct InflateError: Error {
    let reason: String
}

/// The framing around a deflate stream, as zlib's `windowBits` selects it.
enum DeflateFraming {
    /// No header or trailer (zip entries): windowBits -15.
    case raw
    /// A 2-byte zlib header and an Adler-32 trailer (PNG's IDAT): windowBits 15.
    case zlib
    /// A gzip member header and a CRC-32 + length trailer: windowBits 16 + 15.
    case gzip

    var windowBits: Int32 {
        switch self {
        case .raw: -15
        case .zlib: 15
        case .gzip: 16 + 15
        }
    }
}

/// Decompresses one stream of `framing` starting at byte `start` of `input`.
///
/// The stream must end (zlib's `Z_STREAM_END`) within `input`; bytes after it are
/// left alone and their start is returned, so callers can read what follows.
/// - Parameters:
///   - input: the compressed bytes (the stream may be followed by other data).
///   - start: index of the stream's first byte.
///   - framing: raw deflate, zlib or gzip.
///   - sizeHint: expected decompressed size, to allocate once (0: unknown).
/// - Returns: the data and the index of the first byte after the stream.
/// - Throws: `InflateError` with zlib's message (e.g. "incorrect data check" for a
///   failed CRC-32 or Adler-32) or "unexpected end of compressed data".
func decompress(_ input: UnsafeBufferPointer<UInt8>, start: Int = 0, framing: DeflateFraming,
                sizeHint: Int = 0) throws -> (data: [UInt8], end: Int) {
    precondition(start >= 0 && start <= input.count, "decompress: start \(start) outside 0...\(input.count)")
    var stream = z_stream()
    let status = inflateInit2_(&stream, framing.windowBits, zlibVersion(), Int32(MemoryLayout<z_stream>.size))
    guard status == Z_OK else { throw InflateError(reason: "zlib initialisation failed (\(status))") }
    defer { inflateEnd(&stream) }

    var out = [UInt8](repeating: 0, count: max(1024, sizeHint))
    var produced = 0
    var consumed = start
    while true {
        // Feed at most 1 GiB at a time: avail_in and avail_out are 32-bit.
        let inCount = min(input.count - consumed, 1 << 30)
        if produced == out.count { out += [UInt8](repeating: 0, count: out.count) }
        let outCount = min(out.count - produced, 1 << 30)
        let result: Int32 = out.withUnsafeMutableBufferPointer { dst in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress.map { $0 + consumed })
            stream.avail_in = UInt32(inCount)
            stream.next_out = dst.baseAddress! + produced
            stream.avail_out = UInt32(outCount)
            let r = CZlib.inflate(&stream, Z_NO_FLUSH)
            consumed += inCount - Int(stream.avail_in)
            produced += outCount - Int(stream.avail_out)
            return r
        }
        switch result {
        case Z_STREAM_END:
            out.removeLast(out.count - produced)
            return (out, consumed)
        case Z_OK:
            continue
        case Z_BUF_ERROR where consumed == input.count:
            throw InflateError(reason: "unexpected end of compressed data")
        case Z_BUF_ERROR:
            continue  // no room for output: the next pass grows `out`
        case Z_NEED_DICT:
            throw InflateError(reason: "stream needs a preset dictionary")
        case Z_MEM_ERROR:
            throw InflateError(reason: "out of memory")
        default:
            let message = stream.msg.map { String(cString: $0) } ?? "zlib error \(result)"
            throw InflateError(reason: message)
        }
    }
}

/// Decompresses a raw deflate stream (a zip entry) starting at `start`.
/// - Returns: the data and the index of the first byte after the stream.
/// - Throws: `InflateError` when the stream is corrupt or ends early.
func inflate(_ input: UnsafeBufferPointer<UInt8>, start: Int = 0, sizeHint: Int = 0) throws -> (data: [UInt8], end: Int) {
    try decompress(input, start: start, framing: .raw, sizeHint: sizeHint)
}

/// Whether `bytes` start with the gzip magic number 1f 8b.
func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B }

/// Decompresses a gzip file, all members in turn; zlib checks each member's CRC-32
/// and length. Bytes after a member that do not start another one are ignored, as
/// gzip does.
/// - Throws: `InflateError` when the file is not gzip, or a member is corrupt,
///   fails its checks or is cut short.
func gunzip(_ bytes: [UInt8]) throws -> [UInt8] {
    guard isGzip(bytes) else { throw InflateError(reason: "not a gzip stream") }
    return try bytes.withUnsafeBufferPointer { input in
        var out = [UInt8]()
        var p = 0
        while p + 2 <= input.count, input[p] == 0x1F, input[p + 1] == 0x8B {
            var hint = 0
            if out.isEmpty, input.count >= 4 {
                // The last member's size field; only a hint (it may be garbage in a
                // damaged file), capped so a bad value cannot force a huge allocation.
                let e = input.count - 4
                hint = Int(input[e]) | Int(input[e + 1]) << 8 | Int(input[e + 2]) << 16 | Int(input[e + 3]) << 24
                hint = min(hint, 16 * input.count + 65_536)
            }
            let (data, end) = try decompress(input, start: p, framing: .gzip, sizeHint: hint)
            if out.isEmpty { out = data } else { out += data }
            p = end
        }
        return out
    }
}

/// CRC-32 (ISO 3309 polynomial) as used by PNG, gzip and zip, computed by zlib.
/// - Parameters:
///   - bytes: the data.
///   - initial: the CRC of preceding data, to continue a running checksum.
func crc32<C: Collection>(_ bytes: C, initial: UInt32 = 0) -> UInt32 where C.Element == UInt8 {
    let run = { (p: UnsafeBufferPointer<UInt8>) -> UInt32 in
        // zlib answers a null buffer with the initial value 0, not with `initial`.
        p.isEmpty ? initial : UInt32(CZlib.crc32_z(UInt(initial), p.baseAddress, p.count))
    }
    return bytes.withContiguousStorageIfAvailable(run) ?? Array(bytes).withUnsafeBufferPointer(run)
}

/// Adler-32 as used by zlib streams, computed by zlib.
func adler32<C: Collection>(_ bytes: C) -> UInt32 where C.Element == UInt8 {
    let run = { (p: UnsafeBufferPointer<UInt8>) -> UInt32 in
        UInt32(CZlib.adler32_z(1, p.baseAddress, p.count))
    }
    return bytes.withContiguousStorageIfAvailable(run) ?? Array(bytes).withUnsafeBufferPointer(run)
}
