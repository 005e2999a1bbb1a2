// PNG decoding (W3C PNG specification, 2nd edition): chunks with their CRC-32
// checked, IHDR/PLTE/IDAT/IEND, the image data inflated by zlib, the five scanline
// filters, Adam7 interlacing, every colour type at 8 bits and grey and palette at
// 1, 2 and 4 bits. Alpha (colour types 4 and 6) and tRNS are dropped; 16-bit
// images are refused.

/// Decodes PNG files.
enum PNGDecoder {
    /// IHDR's fields that decoding needs.
    struct Header {
        var width: Int
        var height: Int
        var bitDepth: Int
        var colourType: Int
        var interlaced: Bool

        /// Samples per pixel as stored.
        var samples: Int { [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colourType]! }
        /// Bytes per complete pixel, at least 1: the distance the filters look back.
        var filterStride: Int { max(1, samples * bitDepth / 8) }
        /// Bytes of one filtered scanline of `width` pixels, without the filter byte.
        func rowBytes(_ width: Int) -> Int { (width * samples * bitDepth + 7) / 8 }
        /// Channels of the decoded image: grey (with or without alpha) 1, else 3.
        var channels: Int { colourType == 0 || colourType == 4 ? 1 : 3 }
    }

    /// Adam7's passes: first column, first row, column step, row step.
    static let adam7: [(x: Int, y: Int, dx: Int, dy: Int)] = [
        (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
    ]

    /// Decodes a PNG held in memory; `name` is what errors call it.
    /// - Throws: `DataError` naming `name`: truncated, a failed chunk CRC, a bad or
    ///   unsupported header (16-bit), corrupt image data, a missing palette.
    static func decode(_ b: [UInt8], name: String) throws -> DecodedImage {
        func bad(_ reason: String) -> DataError { DataError.malformed(file: name, reason: reason) }
        var header: Header?
        var palette: [UInt8] = []
        var idat: [UInt8] = []
        var p = 8
        var ended = false
        while !ended {
            guard p + 12 <= b.count else {
                throw DataError.truncated(file: name, expected: p + 12, actual: b.count)
            }
            let length = Int(b.bigEndianUInt32(at: p))
            let type = String(decoding: b[(p + 4)..<(p + 8)], as: UTF8.self)
            guard length <= Int(Int32.max), p + 12 + length <= b.count else {
                throw DataError.truncated(file: name, expected: p + 12 + length, actual: b.count)
            }
            let data = (p + 8)..<(p + 8 + length)
            let stored = b.bigEndianUInt32(at: p + 8 + length)
            let computed = crc32(b[(p + 4)..<(p + 8 + length)])
            guard stored == computed else {
                throw bad("PNG chunk \(type) at byte \(p) fails its CRC-32 check (stored \(hex32(stored)), computed \(hex32(computed)))")
            }
            if header == nil && type != "IHDR" { throw bad("PNG does not start with an IHDR chunk (found \(type))") }
            switch type {
            case "IHDR":
                guard header == nil else { throw bad("PNG has a second IHDR chunk") }
                header = try parseHeader(Array(b[data]), name: name)
            case "PLTE":
                guard length % 3 == 0, length >= 3, length <= 768 else { throw bad("PNG palette of \(length) bytes; expected 3 to 768, a multiple of 3") }
                palette = Array(b[data])
            case "IDAT":
                idat += b[data]
            case "IEND":
                ended = true
            default:
                // An unknown critical chunk (upper-case first letter) changes how the
                // image reads; ancillary ones (tRNS, gAMA, text, …) can be skipped.
                if let first = type.utf8.first, first >= 0x41, first <= 0x5A {
                    throw bad("PNG has an unknown critical chunk \(type)")
                }
            }
            p += 12 + length
        }
        let h = header!
        if h.colourType == 3 && palette.isEmpty { throw bad("palette PNG has no PLTE chunk") }
        guard !idat.isEmpty else { throw bad("PNG has no IDAT chunk") }

        // The filtered scanlines of every pass, each with its filter-type byte.
        let passes: [(x: Int, y: Int, dx: Int, dy: Int)] = h.interlaced ? adam7 : [(0, 0, 1, 1)]
        let sizes = passes.map { pass in
            ((h.width - pass.x + pass.dx - 1) / pass.dx, (h.height - pass.y + pass.dy - 1) / pass.dy)
        }
        let expected = sizes.reduce(0) { $0 + ($1.0 == 0 ? 0 : $1.1 * (1 + h.rowBytes($1.0))) }
        let raw: [UInt8]
        do {
            raw = try idat.withUnsafeBufferPointer { try decompress($0, framing: .zlib, sizeHint: expected).data }
        } catch let e as InflateError {
            throw bad("corrupt PNG image data: \(e.reason)")
        }
        guard raw.count >= expected else {
            throw bad("PNG image data inflates to \(raw.count) bytes; \(h.width)×\(h.height) needs \(expected)")
        }

        let channels = h.channels
        var out = [UInt8](repeating: 0, count: h.width * h.height * channels)
        var offset = 0
        for (pass, size) in zip(passes, sizes) where size.0 > 0 && size.1 > 0 {
            let rowBytes = h.rowBytes(size.0)
            var previous = [UInt8](repeating: 0, count: rowBytes)
            var row = [UInt8](repeating: 0, count: rowBytes)
            for r in 0..<size.1 {
                let filter = raw[offset]
                guard filter <= 4 else { throw bad("PNG scanline \(r) has filter type \(filter); expected 0 to 4") }
                for k in 0..<rowBytes { row[k] = raw[offset + 1 + k] }
                unfilter(&row, previous: previous, type: Int(filter), stride: h.filterStride)
                offset += 1 + rowBytes
                try place(row, width: size.0, header: h, palette: palette, name: name,
                          into: &out, y: pass.y + r * pass.dy, x0: pass.x, dx: pass.dx)
                swap(&row, &previous)
            }
        }
        return DecodedImage(width: h.width, height: h.height, channels: channels, pixels: out)
    }

    /// IHDR checked: sizes, a supported bit depth for the colour type, methods 0.
    static func parseHeader(_ d: [UInt8], name: String) throws -> Header {
        func bad(_ reason: String) -> DataError { DataError.malformed(file: name, reason: reason) }
        guard d.count == 13 else { throw bad("PNG IHDR chunk has \(d.count) bytes; expected 13") }
        let h = Header(width: Int(d.bigEndianUInt32(at: 0)), height: Int(d.bigEndianUInt32(at: 4)),
                       bitDepth: Int(d[8]), colourType: Int(d[9]), interlaced: d[12] == 1)
        try ImageFile.checkSize(width: h.width, height: h.height, name: name, format: .png)
        let depths: [Int: [Int]] = [0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16]]
        guard let allowed = depths[h.colourType] else { throw bad("PNG colour type \(h.colourType) is not 0, 2, 3, 4 or 6") }
        guard allowed.contains(h.bitDepth) else {
            throw bad("PNG bit depth \(h.bitDepth) is not allowed for colour type \(h.colourType)")
        }
        if h.bitDepth == 16 { throw bad("16-bit PNG is not supported; convert to 8-bit") }
        guard d[10] == 0, d[11] == 0, d[12] <= 1 else {
            throw bad("PNG compression \(d[10]), filter \(d[11]) or interlace \(d[12]) method is unknown")
        }
        return h
    }

    /// Reverses scanline filter `type` (0 none, 1 sub, 2 up, 3 average, 4 Paeth) in place.
    static func unfilter(_ row: inout [UInt8], previous: [UInt8], type: Int, stride s: Int) {
        let n = row.count
        row.withUnsafeMutableBufferPointer { r in
            previous.withUnsafeBufferPointer { up in
                switch type {
                case 1:
                    for i in s..<max(s, n) { r[i] &+= r[i - s] }
                case 2:
                    for i in 0..<n { r[i] &+= up[i] }
                case 3:
                    for i in 0..<n {
                        let left = i >= s ? Int(r[i - s]) : 0
                        r[i] &+= UInt8((left + Int(up[i])) / 2)
                    }
                case 4:
                    for i in 0..<n {
                        let a = i >= s ? Int(r[i - s]) : 0, b = Int(up[i]), c = i >= s ? Int(up[i - s]) : 0
                        let est = a + b - c
                        let pa = abs(est - a), pb = abs(est - b), pc = abs(est - c)
                        r[i] &+= UInt8(pa <= pb && pa <= pc ? a : pb <= pc ? b : c)
                    }
                default:
                    break
                }
            }
        }
    }

    /// Writes one unfiltered scanline of `width` pixels to row `y` of `out`, at
    /// columns `x0`, `x0 + dx`, …: samples unpacked and scaled to 8 bits, palette
    /// indices looked up, alpha dropped.
    static func place(_ row: [UInt8], width: Int, header h: Header, palette: [UInt8], name: String,
                      into out: inout [UInt8], y: Int, x0: Int, dx: Int) throws {
        let c = h.channels
        let base = y * h.width
        switch (h.colourType, h.bitDepth) {
        case (0, 8), (4, 8):
            let step = h.samples
            for i in 0..<width { out[base + x0 + i * dx] = row[i * step] }
        case (2, 8), (6, 8):
            let step = h.samples
            for i in 0..<width {
                let d = (base + x0 + i * dx) * 3
                out[d] = row[i * step]; out[d + 1] = row[i * step + 1]; out[d + 2] = row[i * step + 2]
            }
        default:  // grey or palette, 1, 2, 4 or 8 bits
            let bits = h.bitDepth, mask = (1 << bits) - 1, scale = 255 / mask
            let entries = palette.count / 3
            for i in 0..<width {
                let bit = i * bits
                let v = (Int(row[bit >> 3]) >> (8 - bits - (bit & 7))) & mask
                let d = (base + x0 + i * dx) * c
                if h.colourType == 0 {
                    out[d] = UInt8(v * scale)
                } else {
                    guard v < entries else {
                        throw DataError.malformed(file: name, reason: "PNG pixel uses palette index \(v) but the palette has \(entries) entries")
                    }
                    out[d] = palette[3 * v]; out[d + 1] = palette[3 * v + 1]; out[d + 2] = palette[3 * v + 2]
                }
            }
        }
    }
}

/// `v` as 8 hexadecimal digits, e.g. 0x1a2b3c4d.
private func hex32(_ v: UInt32) -> String {
    let digits = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
}
