// Decompression of deflate streams (RFC 1951) and gzip files (RFC 1952), enough to
// read `*.gz` IDX files and deflated `.npz` entries without a system zlib.
// Huffman codes decode through a 10-bit lookup table, longer codes bit by bit in
// the canonical order.

/// Why a compressed stream could not be decoded.
struct InflateError: Error {
    let reason: String
}

/// A canonical Huffman code built from code lengths.
private struct Huffman {
    static let fastBits = 10
    /// For each length 0...15, how many symbols have that length.
    var counts = [Int](repeating: 0, count: 16)
    /// Symbols ordered by (length, value).
    var symbols: [Int]
    /// Indexed by the next `fastBits` input bits (LSB first): `symbol << 4 | length`,
    /// or 0 when the code is longer than `fastBits`.
    var table = [UInt32](repeating: 0, count: 1 << fastBits)

    init(lengths: [Int]) throws {
        for l in lengths { counts[l] += 1 }
        counts[0] = 0
        var left = 1
        for len in 1...15 {
            left <<= 1
            left -= counts[len]
            if left < 0 { throw InflateError(reason: "over-subscribed Huffman code") }
        }
        var offsets = [Int](repeating: 0, count: 16)
        for len in 1..<15 { offsets[len + 1] = offsets[len] + counts[len] }
        symbols = [Int](repeating: 0, count: lengths.count)
        for (sym, l) in lengths.enumerated() where l != 0 {
            symbols[offsets[l]] = sym
            offsets[l] += 1
        }
        // Canonical codes, bit-reversed for LSB-first lookup.
        var code = 0
        var nextCode = [Int](repeating: 0, count: 16)
        for len in 1...15 { nextCode[len] = code; code = (code + counts[len]) << 1 }
        for (sym, l) in lengths.enumerated() where l != 0 {
            let c = nextCode[l]
            nextCode[l] += 1
            guard l <= Huffman.fastBits else { continue }
            var rev = 0
            for b in 0..<l where c & (1 << b) != 0 { rev |= 1 << (l - 1 - b) }
            var i = rev
            while i < (1 << Huffman.fastBits) {
                table[i] = UInt32(sym << 4 | l)
                i += 1 << l
            }
        }
    }
}

/// LSB-first bit reader over a byte buffer.
private struct BitReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var position: Int
    var buffer: UInt64 = 0
    var count = 0

    init(_ bytes: UnsafeBufferPointer<UInt8>, start: Int) {
        self.bytes = bytes
        position = start
    }

    /// Fills the buffer to at least 57 bits where input remains (zero bits past the end).
    @inline(__always) mutating func refill() {
        while count <= 56 {
            if position < bytes.count { buffer |= UInt64(bytes[position]) << UInt64(count) }
            position += 1
            count += 8
        }
    }

    @inline(__always) mutating func bits(_ n: Int) throws -> Int {
        if n == 0 { return 0 }
        if count < n {
            refill()
            if position > bytes.count + 16 { throw InflateError(reason: "unexpected end of compressed data") }
        }
        let v = Int(buffer & ((1 << UInt64(n)) - 1))
        buffer >>= UInt64(n)
        count -= n
        return v
    }

    /// Drops bits up to the next byte boundary.
    mutating func alignToByte() {
        let drop = count % 8
        buffer >>= UInt64(drop)
        count -= drop
    }

    /// Index of the next unread byte (after `alignToByte`).
    var bytePosition: Int { position - count / 8 }

    /// Moves to byte `index`, discarding buffered bits.
    mutating func seek(_ index: Int) {
        position = index
        buffer = 0
        count = 0
    }

    @inline(__always) fileprivate mutating func decode(_ h: Huffman) throws -> Int {
        if count < 15 {
            refill()
            if position > bytes.count + 16 { throw InflateError(reason: "unexpected end of compressed data") }
        }
        let e = h.table[Int(buffer & UInt64((1 << Huffman.fastBits) - 1))]
        if e != 0 {
            let l = Int(e & 15)
            buffer >>= UInt64(l)
            count -= l
            return Int(e >> 4)
        }
        // Slow path: walk the canonical code one bit at a time.
        var code = 0, first = 0, index = 0
        for len in 1...15 {
            code |= Int(buffer & 1)
            buffer >>= 1
            count -= 1
            let n = h.counts[len]
            if code - n < first { return h.symbols[index + (code - first)] }
            index += n
            first = (first + n) << 1
            code <<= 1
        }
        throw InflateError(reason: "invalid Huffman code")
    }
}

private let lengthBase = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
private let lengthExtra = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
private let distBase = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073,
                        4097, 6145, 8193, 12289, 16385, 24577]
private let distExtra = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]
private let fixedLiteral = try! Huffman(lengths: (0..<288).map { $0 < 144 ? 8 : $0 < 256 ? 9 : $0 < 280 ? 7 : 8 })
private let fixedDistance = try! Huffman(lengths: [Int](repeating: 5, count: 30))
private let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

/// Decompresses a raw deflate stream starting at `start`.
/// - Returns: the data and the index of the first byte after the stream.
func inflate(_ input: UnsafeBufferPointer<UInt8>, start: Int = 0, sizeHint: Int = 0) throws -> (data: [UInt8], end: Int) {
    var r = BitReader(input, start: start)
    var out = [UInt8](repeating: 0, count: max(1024, sizeHint))
    var o = 0
    @inline(__always) func ensure(_ n: Int) {
        if o + n > out.count { out += [UInt8](repeating: 0, count: max(n, out.count)) }
    }
    var final = false
    while !final {
        final = try r.bits(1) == 1
        let type = try r.bits(2)
        switch type {
        case 0:
            r.alignToByte()
            let p = r.bytePosition
            r.seek(p)
            guard p + 4 <= input.count else { throw InflateError(reason: "unexpected end of compressed data") }
            let len = Int(input[p]) | Int(input[p + 1]) << 8
            let nlen = Int(input[p + 2]) | Int(input[p + 3]) << 8
            guard len == (~nlen & 0xFFFF) else { throw InflateError(reason: "stored block length check failed") }
            guard p + 4 + len <= input.count else { throw InflateError(reason: "unexpected end of compressed data") }
            ensure(len)
            for k in 0..<len { out[o + k] = input[p + 4 + k] }
            o += len
            r.seek(p + 4 + len)
        case 1, 2:
            var lit = fixedLiteral, dist = fixedDistance
            if type == 2 {
                let hlit = try r.bits(5) + 257, hdist = try r.bits(5) + 1, hclen = try r.bits(4) + 4
                var clen = [Int](repeating: 0, count: 19)
                for k in 0..<hclen { clen[codeLengthOrder[k]] = try r.bits(3) }
                let lencode = try Huffman(lengths: clen)
                var lengths = [Int]()
                lengths.reserveCapacity(hlit + hdist)
                while lengths.count < hlit + hdist {
                    let sym = try r.decode(lencode)
                    switch sym {
                    case 0..<16: lengths.append(sym)
                    case 16:
                        guard let prev = lengths.last else { throw InflateError(reason: "repeat with no previous length") }
                        lengths += [Int](repeating: prev, count: 3 + (try r.bits(2)))
                    case 17: lengths += [Int](repeating: 0, count: 3 + (try r.bits(3)))
                    default: lengths += [Int](repeating: 0, count: 11 + (try r.bits(7)))
                    }
                }
                guard lengths.count == hlit + hdist else { throw InflateError(reason: "too many code lengths") }
                guard lengths[256] != 0 else { throw InflateError(reason: "no end-of-block code") }
                lit = try Huffman(lengths: Array(lengths[0..<hlit]))
                dist = try Huffman(lengths: Array(lengths[hlit...]))
            }
            while true {
                let sym = try r.decode(lit)
                if sym < 256 {
                    ensure(1)
                    out[o] = UInt8(sym)
                    o += 1
                } else if sym == 256 {
                    break
                } else {
                    let li = sym - 257
                    guard li < 29 else { throw InflateError(reason: "invalid length symbol") }
                    let len = lengthBase[li] + (try r.bits(lengthExtra[li]))
                    let di = try r.decode(dist)
                    guard di < 30 else { throw InflateError(reason: "invalid distance symbol") }
                    let d = distBase[di] + (try r.bits(distExtra[di]))
                    guard d <= o else { throw InflateError(reason: "distance too far back") }
                    ensure(len)
                    out.withUnsafeMutableBufferPointer { p in
                        for k in 0..<len { p[o + k] = p[o + k - d] }
                    }
                    o += len
                }
            }
        default:
            throw InflateError(reason: "invalid block type")
        }
        if r.bytePosition > input.count { throw InflateError(reason: "unexpected end of compressed data") }
    }
    r.alignToByte()
    out.removeLast(out.count - o)
    return (out, r.bytePosition)
}

/// Whether `bytes` start with the gzip magic number 1f 8b.
func isGzip(_ bytes: [UInt8]) -> Bool { bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B }

/// Decompresses a gzip file (all members), checking each member's CRC-32 and size.
func gunzip(_ bytes: [UInt8]) throws -> [UInt8] {
    try bytes.withUnsafeBufferPointer { input in
        var out = [UInt8]()
        var p = 0
        while p < input.count {
            guard p + 10 <= input.count, input[p] == 0x1F, input[p + 1] == 0x8B else {
                if p > 0 { break }  // trailing garbage after a member is ignored, as gzip does
                throw InflateError(reason: "not a gzip stream")
            }
            guard input[p + 2] == 8 else { throw InflateError(reason: "unknown gzip compression method \(input[p + 2])") }
            let flags = input[p + 3]
            p += 10
            if flags & 4 != 0 {
                guard p + 2 <= input.count else { throw InflateError(reason: "truncated gzip header") }
                p += 2 + (Int(input[p]) | Int(input[p + 1]) << 8)
            }
            for bit: UInt8 in [8, 16] where flags & bit != 0 {
                while p < input.count && input[p] != 0 { p += 1 }
                p += 1
            }
            if flags & 2 != 0 { p += 2 }
            guard p < input.count else { throw InflateError(reason: "truncated gzip header") }
            var hint = 0
            if input.count >= 4 {
                let e = input.count - 4
                hint = Int(input[e]) | Int(input[e + 1]) << 8 | Int(input[e + 2]) << 16 | Int(input[e + 3]) << 24
            }
            // The trailer's size is only a hint (it may be garbage in a damaged file):
            // cap it so a bad value cannot force a huge allocation.
            hint = min(hint, 16 * input.count + 65_536)
            let (data, end) = try inflate(input, start: p, sizeHint: out.isEmpty ? hint : 0)
            guard end + 8 <= input.count else { throw InflateError(reason: "truncated gzip trailer") }
            let crc = UInt32(input[end]) | UInt32(input[end + 1]) << 8 | UInt32(input[end + 2]) << 16 | UInt32(input[end + 3]) << 24
            let size = UInt32(input[end + 4]) | UInt32(input[end + 5]) << 8 | UInt32(input[end + 6]) << 16 | UInt32(input[end + 7]) << 24
            guard size == UInt32(truncatingIfNeeded: data.count) else { throw InflateError(reason: "gzip size check failed") }
            guard crc == crc32(data) else { throw InflateError(reason: "gzip CRC-32 check failed") }
            if out.isEmpty { out = data } else { out += data }
            p = end + 8
        }
        return out
    }
}
