// JPEG decoding through libjpeg-turbo's TurboJPEG API (the system library, see
// Sources/CTurboJPEG). TurboJPEG's defaults are djpeg's (accurate integer IDCT,
// fancy upsampling), so the pixels equal `djpeg -pnm`'s. CMYK and YCCK images are
// decoded to CMYK and converted to RGB the way Pillow's `convert("RGB")` does for
// the Adobe (inverted) CMYK that Photoshop, Pillow and libjpeg write. The EXIF
// orientation is applied afterwards (ExifOrientation.swift).

import CTurboJPEG

/// Decodes JPEG files.
enum JPEG {
    /// Decodes a JPEG held in memory; `name` is what errors call it.
    ///
    /// Grey images give 1 channel; YCbCr, RGB, CMYK and YCCK images give 3. A
    /// libjpeg warning (such as "Premature end of JPEG file" for a truncated
    /// image, which libjpeg would otherwise pad with grey) is an error.
    /// - Throws: `DataError.malformed` naming `name` with TurboJPEG's message.
    static func decode(_ bytes: [UInt8], name: String) throws -> DecodedImage {
        guard let handle = tjInitDecompress() else {
            throw DataError.malformed(file: name, reason: "cannot start the JPEG decoder: \(String(cString: tjGetErrorStr2(nil)))")
        }
        defer { tjDestroy(handle) }
        func failure(_ what: String) -> DataError {
            let message = String(cString: tjGetErrorStr2(handle))
            let kind = tjGetErrorCode(handle) == Int32(TJERR_WARNING.rawValue) ? "damaged" : "corrupt"
            return DataError.malformed(file: name, reason: "\(kind) JPEG (\(what)): \(message)")
        }

        var width: Int32 = 0, height: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
        let header = bytes.withUnsafeBufferPointer { b in
            tjDecompressHeader3(handle, b.baseAddress, UInt(b.count), &width, &height, &subsampling, &colorspace)
        }
        guard header == 0 else { throw failure("header") }
        try ImageFile.checkSize(width: Int(width), height: Int(height), name: name, format: .jpeg)

        let format: TJPF
        switch colorspace {
        case Int32(TJCS_GRAY.rawValue): format = TJPF_GRAY
        case Int32(TJCS_CMYK.rawValue), Int32(TJCS_YCCK.rawValue): format = TJPF_CMYK
        default: format = TJPF_RGB
        }
        let stored = format == TJPF_GRAY ? 1 : format == TJPF_CMYK ? 4 : 3
        let w = Int(width), h = Int(height)
        var pixels = [UInt8](repeating: 0, count: w * h * stored)
        let flags = TJFLAG_STOPONWARNING | TJFLAG_ACCURATEDCT
        let status = bytes.withUnsafeBufferPointer { b in
            pixels.withUnsafeMutableBufferPointer { dst in
                tjDecompress2(handle, b.baseAddress, UInt(b.count), dst.baseAddress, width, Int32(w * stored), height,
                              Int32(format.rawValue), flags)
            }
        }
        // A warning also makes tjDecompress2 return -1 (TJERR_WARNING, then reported
        // as "damaged"): STOPONWARNING stops decoding at the first one.
        guard status == 0 else { throw failure("image data") }
        if format == TJPF_CMYK { pixels = adobeCMYKToRGB(pixels) }
        let image = DecodedImage(width: w, height: h, channels: stored == 1 ? 1 : 3, pixels: pixels)
        return ExifOrientation.read(jpeg: bytes).apply(to: image)
    }

    /// RGB of Adobe-inverted CMYK samples (4 bytes per pixel), as Pillow gives them.
    ///
    /// The stored samples are 255 − C, 255 − M, 255 − Y, 255 − K (Adobe's
    /// convention, which Pillow assumes for every CMYK JPEG). Pillow un-inverts
    /// them and computes, per colour, `nk − c·nk/255` with `nk = 255 − K` and its
    /// rounded division by 255: `t = c·nk + 128; (t + t >> 8) >> 8`.
    static func adobeCMYKToRGB(_ cmyk: [UInt8]) -> [UInt8] {
        let n = cmyk.count / 4
        var rgb = [UInt8](repeating: 0, count: n * 3)
        rgb.withUnsafeMutableBufferPointer { out in
            cmyk.withUnsafeBufferPointer { s in
                for i in 0..<n {
                    let nk = Int(s[4 * i + 3])  // 255 − K
                    for c in 0..<3 {
                        let ink = 255 - Int(s[4 * i + c])
                        let t = ink * nk + 128
                        let scaled = ((t >> 8) + t) >> 8
                        out[3 * i + c] = UInt8(clamping: nk - scaled)
                    }
                }
            }
        }
        return rgb
    }
}

extension JPEG {
    /// Encodes an image as a baseline JPEG (4:4:4, accurate DCT) of `quality` (1–100).
    /// - Throws: `DataError.malformed` naming `name` with TurboJPEG's message.
    static func encode(_ image: DecodedImage, quality: Int, name: String) throws -> [UInt8] {
        guard let handle = tjInitCompress() else {
            throw DataError.malformed(file: name, reason: "cannot start the JPEG encoder: \(String(cString: tjGetErrorStr2(nil)))")
        }
        defer { tjDestroy(handle) }
        var buffer: UnsafeMutablePointer<UInt8>?
        var size: UInt = 0
        let format = image.channels == 1 ? TJPF_GRAY : TJPF_RGB
        let subsampling = image.channels == 1 ? TJSAMP_GRAY : TJSAMP_444
        let status = image.pixels.withUnsafeBufferPointer { p in
            tjCompress2(handle, p.baseAddress, Int32(image.width), Int32(image.width * image.channels), Int32(image.height),
                        Int32(format.rawValue), &buffer, &size, Int32(subsampling.rawValue), Int32(quality), TJFLAG_ACCURATEDCT)
        }
        defer { if let buffer { tjFree(buffer) } }
        guard status == 0, let buffer else {
            throw DataError.malformed(file: name, reason: "cannot encode JPEG: \(String(cString: tjGetErrorStr2(handle)))")
        }
        return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
    }
}
