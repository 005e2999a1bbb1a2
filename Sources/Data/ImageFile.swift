// Reading image files: one entry point that recognizes JPEG and PNG by their
// first bytes (never by the file name) and returns interleaved 8-bit pixels,
// plus the conversion to the planar layout `Dataset` stores.

/// A decoded image: 8-bit pixels, H×W×C interleaved (row-major, channels last).
public struct DecodedImage: Sendable, Equatable {
    /// Pixels per row (W).
    public let width: Int
    /// Rows (H).
    public let height: Int
    /// Channels per pixel (C): 1 for grey, 3 for RGB.
    public let channels: Int
    /// All pixels, H×W×C: row `y`, column `x`, channel `c` is at `(y * W + x) * C + c`.
    public var pixels: [UInt8]

    /// Creates an image; `pixels` must hold exactly `height × width × channels` bytes.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 1 && height >= 1, "DecodedImage: size \(width)×\(height) must be positive")
        precondition(channels == 1 || channels == 3, "DecodedImage: \(channels) channels; expected 1 or 3")
        precondition(pixels.count == width * height * channels,
                     "DecodedImage: \(pixels.count) bytes do not make \(height)×\(width)×\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// The pixels as 3×H×W planes (C×H×W, the layout of `Dataset.pixels`); a grey
    /// image's one plane is repeated three times.
    public func planarRGB() -> [UInt8] {
        let plane = width * height
        var out = [UInt8](repeating: 0, count: 3 * plane)
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                if channels == 1 {
                    for c in 0..<3 { dst.baseAddress!.advanced(by: c * plane).update(from: src.baseAddress!, count: plane) }
                } else {
                    for i in 0..<plane {
                        dst[i] = src[3 * i]
                        dst[plane + i] = src[3 * i + 1]
                        dst[2 * plane + i] = src[3 * i + 2]
                    }
                }
            }
        }
        return out
    }
}

/// Decodes JPEG and PNG files to `DecodedImage`.
///
/// JPEG goes through the system libjpeg-turbo (TurboJPEG): grey, YCbCr and CMYK,
/// baseline and progressive, with the EXIF orientation applied. PNG is decoded
/// here with zlib: every 8-bit colour type (alpha dropped, palettes expanded),
/// grey and palette at 1, 2 and 4 bits, Adam7 interlacing. Both give 1 channel for
/// grey images and 3 for everything else.
public enum ImageFile {
    /// The formats `decode` recognizes.
    public enum Format: String, Sendable {
        case jpeg = "JPEG"
        case png = "PNG"
    }

    /// Images larger than this many pixels are refused (a corrupt or hostile header
    /// must not make the reader allocate gigabytes).
    public static let maxPixels = 1 << 28

    /// The format `bytes` start with, or nil when they are neither JPEG nor PNG.
    public static func format(of bytes: [UInt8]) -> Format? {
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        if bytes.count >= 8, Array(bytes[0..<8]) == pngSignature { return .png }
        return nil
    }

    /// Reads and decodes the image file at `path`.
    /// - Parameter path: a JPEG or PNG file; the format is taken from its content.
    /// - Returns: the pixels, 1 channel for grey images and 3 for colour.
    /// - Throws: `DataError` naming the file: it cannot be read, is not a JPEG or PNG
    ///   image, is truncated or corrupt (with libjpeg-turbo's or zlib's message),
    ///   or uses something not supported (16-bit PNG).
    public static func decode(path: String) throws -> DecodedImage {
        try decode(try readFile(path), name: path)
    }

    /// Decodes an image held in memory; `name` is what errors call it.
    /// - Throws: `DataError` as `decode(path:)` does.
    public static func decode(_ bytes: [UInt8], name: String) throws -> DecodedImage {
        switch format(of: bytes) {
        case .jpeg: return try JPEG.decode(bytes, name: name)
        case .png: return try PNGDecoder.decode(bytes, name: name)
        case nil:
            throw DataError.malformed(file: name, reason: "not a JPEG or PNG image (it starts with \(hex(bytes.prefix(8))))")
        }
    }

    /// Checks a header's size against `maxPixels` before anything is allocated.
    static func checkSize(width: Int, height: Int, name: String, format: Format) throws {
        guard width >= 1, height >= 1 else {
            throw DataError.malformed(file: name, reason: "\(format.rawValue) size \(width)×\(height) is empty")
        }
        guard let n = checkedProduct([width, height]), n <= maxPixels else {
            throw DataError.malformed(file: name, reason: "\(format.rawValue) size \(width)×\(height) exceeds the limit of \(maxPixels) pixels")
        }
    }
}

/// The 8 bytes every PNG file starts with.
let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
