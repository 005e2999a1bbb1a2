// The EXIF orientation of a JPEG (TIFF tag 0x0112 in IFD0 of the APP1 "Exif"
// segment; EXIF 2.3 §4.6.4, TIFF 6.0 §2) and the transposes and flips that show
// the image upright, as Pillow's `ImageOps.exif_transpose` applies them.

/// How the stored pixels must be turned to be seen upright: EXIF orientation 1–8.
///
/// The value says where the stored image's first row and first column belong:
/// 1 as stored, 2 mirrored left–right, 3 rotated 180°, 4 mirrored top–bottom,
/// 5 transposed (mirrored about the main diagonal), 6 rotated 90° clockwise to
/// view, 7 transversed (mirrored about the other diagonal), 8 rotated 90°
/// counter-clockwise to view.
struct ExifOrientation: Equatable {
    /// The EXIF value, 1...8.
    let value: Int

    init(_ value: Int) {
        precondition((1...8).contains(value), "ExifOrientation: \(value) is not 1...8")
        self.value = value
    }

    static let upright = ExifOrientation(1)

    /// The orientation a JPEG's first Exif segment declares, `upright` when it has
    /// none or the segment is damaged (a bad Exif block must not make a readable
    /// image unreadable, as in every viewer).
    static func read(jpeg b: [UInt8]) -> ExifOrientation {
        var p = 2  // after SOI
        while p + 4 <= b.count, b[p] == 0xFF {
            let marker = b[p + 1]
            if marker == 0xFF { p += 1; continue }  // fill byte
            if marker == 0xDA || marker == 0xD9 { break }  // start of scan, end of image: no more headers
            let length = Int(b[p + 2]) << 8 | Int(b[p + 3])
            guard length >= 2, p + 2 + length <= b.count else { break }
            let body = (p + 4)..<(p + 2 + length)
            if marker == 0xE1, body.count >= 14, Array(b[body.lowerBound..<(body.lowerBound + 6)]) == exifHeader {
                return tiffOrientation(Array(b[(body.lowerBound + 6)..<body.upperBound])) ?? .upright
            }
            p += 2 + length
        }
        return .upright
    }

    /// Tag 0x0112 of IFD0 in a TIFF block (either byte order), if present and 1...8.
    static func tiffOrientation(_ t: [UInt8]) -> ExifOrientation? {
        guard t.count >= 8 else { return nil }
        let little: Bool
        switch (t[0], t[1]) {
        case (0x49, 0x49): little = true   // "II"
        case (0x4D, 0x4D): little = false  // "MM"
        default: return nil
        }
        func u16(_ o: Int) -> Int? {
            guard o >= 0, o + 2 <= t.count else { return nil }
            return little ? Int(t[o]) | Int(t[o + 1]) << 8 : Int(t[o]) << 8 | Int(t[o + 1])
        }
        func u32(_ o: Int) -> Int? {
            guard let a = u16(o), let b = u16(o + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return nil }
        for k in 0..<count {
            let entry = ifd + 2 + 12 * k
            guard let tag = u16(entry), let type = u16(entry + 2) else { return nil }
            guard tag == 0x0112 else { continue }
            // SHORT (3) as the standard says; LONG (4) seen from some writers.
            let value: Int?
            switch type {
            case 3: value = u16(entry + 8)
            case 4: value = u32(entry + 8)
            default: value = nil
            }
            guard let v = value, (1...8).contains(v) else { return nil }
            return ExifOrientation(v)
        }
        return nil
    }

    /// `image` turned upright: the same pixels, transposed and/or flipped.
    func apply(to image: DecodedImage) -> DecodedImage {
        if value == 1 { return image }
        let w = image.width, h = image.height, c = image.channels
        let swaps = value >= 5  // 5–8 exchange width and height
        let ow = swaps ? h : w, oh = swaps ? w : h
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        out.withUnsafeMutableBufferPointer { dst in
            image.pixels.withUnsafeBufferPointer { src in
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        // The stored pixel (x, y) shown at (ox, oy).
                        let x: Int, y: Int
                        switch value {
                        case 2: (x, y) = (w - 1 - ox, oy)
                        case 3: (x, y) = (w - 1 - ox, h - 1 - oy)
                        case 4: (x, y) = (ox, h - 1 - oy)
                        case 5: (x, y) = (oy, ox)
                        case 6: (x, y) = (oy, h - 1 - ox)
                        case 7: (x, y) = (w - 1 - oy, h - 1 - ox)
                        default: (x, y) = (w - 1 - oy, ox)  // 8
                        }
                        let s = (y * w + x) * c, d = (oy * ow + ox) * c
                        for k in 0..<c { dst[d + k] = src[s + k] }
                    }
                }
            }
        }
        return DecodedImage(width: ow, height: oh, channels: c, pixels: out)
    }
}

/// "Exif\0\0", the start of an APP1 segment holding EXIF data.
private let exifHeader: [UInt8] = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]
