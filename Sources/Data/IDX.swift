// The IDX format of MNIST, EMNIST, Fashion-MNIST and USPS ports
// (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`), optionally gzip-compressed.
// Big-endian: magic 0x0000 TT DD (TT element type, DD number of dimensions), then
// DD 32-bit sizes, then the elements.

/// Reads and writes IDX files.
public enum IDX {
    /// A decoded IDX file of unsigned bytes.
    struct Content {
        var dimensions: [Int]
        var bytes: [UInt8]
    }

    /// Loads an image file and a label file as a dataset.
    ///
    /// Images must be unsigned bytes of shape (N, H, W) (grey) or (N, C, H, W);
    /// labels unsigned bytes of shape (N). Either file may be gzip-compressed
    /// (detected by content, whatever the name).
    /// - Parameters:
    ///   - images: path of the `*-images-idx3-ubyte[.gz]` file.
    ///   - labels: path of the `*-labels-idx1-ubyte[.gz]` file.
    ///   - domain: name given to the dataset.
    ///   - shape: convert images to this shape; `nil` keeps them as stored.
    ///   - classCount: number of classes; by default the largest label + 1.
    /// - Throws: `DataError` naming the file: wrong magic number, unsupported element
    ///   type, truncated data, image and label counts that differ.
    public static func load(images: String, labels: String, domain: String,
                            shape: ImageShape? = .digits, classCount: Int? = nil) throws -> Dataset {
        let img = try read(images)
        let lab = try read(labels)
        guard img.dimensions.count == 3 || img.dimensions.count == 4 else {
            throw DataError.malformed(file: images, reason: "image file has \(img.dimensions.count) dimensions; expected 3 (N, H, W) or 4 (N, C, H, W)")
        }
        guard lab.dimensions.count == 1 else {
            throw DataError.malformed(file: labels, reason: "label file has \(lab.dimensions.count) dimensions; expected 1")
        }
        let n = img.dimensions[0]
        guard lab.dimensions[0] == n else {
            throw DataError.countMismatch(file: labels, images: n, labels: lab.dimensions[0])
        }
        let c = img.dimensions.count == 4 ? img.dimensions[1] : 1
        let h = img.dimensions[img.dimensions.count - 2], w = img.dimensions[img.dimensions.count - 1]
        guard c == 1 || c == 3 else {
            throw DataError.malformed(file: images, reason: "images have \(c) channels; expected 1 or 3")
        }
        let labelValues = lab.bytes.map { Int32($0) }
        let classes = try checkedClassCount(labelValues, classCount: classCount, file: labels)
        let (pixels, s) = conform(img.bytes, count: n, channels: c, height: h, width: w, to: shape)
        return Dataset(domain: domain, channels: s.channels, height: s.height, width: s.width,
                       pixels: pixels, labels: labelValues, classCount: classes)
    }

    /// Reads one IDX file of unsigned bytes (gzip or not).
    static func read(_ path: String) throws -> Content {
        let bytes = try gunzipIfNeeded(try readFile(path), path: path)
        guard bytes.count >= 4 else { throw DataError.truncated(file: path, expected: 4, actual: bytes.count) }
        guard bytes[0] == 0, bytes[1] == 0 else {
            throw DataError.badMagic(file: path, expected: "0x0000TTDD (IDX)", found: hex(bytes.prefix(4)))
        }
        let type = bytes[2], dims = Int(bytes[3])
        guard dims >= 1 && dims <= 4 else {
            throw DataError.badMagic(file: path, expected: "0x0000TTDD with 1 to 4 dimensions", found: hex(bytes.prefix(4)))
        }
        guard type == 0x08 else {
            let names: [UInt8: String] = [0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"]
            throw DataError.unsupportedDType(file: path, dtype: "IDX type 0x\(String(type, radix: 16)) (\(names[type] ?? "unknown")); only unsigned bytes (0x08) are read")
        }
        let header = 4 + 4 * dims
        guard bytes.count >= header else { throw DataError.truncated(file: path, expected: header, actual: bytes.count) }
        let dimensions = (0..<dims).map { Int(bytes.bigEndianUInt32(at: 4 + 4 * $0)) }
        guard let total = checkedProduct(dimensions), total <= Int.max - header else {
            throw DataError.malformed(file: path, reason: "impossible dimensions \(dimensions)")
        }
        guard bytes.count >= header + total else {
            throw DataError.truncated(file: path, expected: header + total, actual: bytes.count)
        }
        return Content(dimensions: dimensions, bytes: [UInt8](bytes[header..<(header + total)]))
    }

    /// IDX bytes of unsigned-byte data with the given dimensions (e.g. [N, H, W]).
    public static func encode(_ data: [UInt8], dimensions: [Int]) -> [UInt8] {
        precondition(data.count == dimensions.reduce(1, *), "IDX.encode: \(data.count) bytes for dimensions \(dimensions)")
        var out: [UInt8] = [0, 0, 0x08, UInt8(dimensions.count)]
        for d in dimensions { out.appendBigEndian(UInt32(d)) }
        return out + data
    }

    /// Writes a dataset's images (N, C, H, W; or N, H, W when C is 1) and labels as two IDX files.
    /// - Throws: `DataError.io` when a file cannot be written.
    public static func write(_ dataset: Dataset, images: String, labels: String) throws {
        let dims = dataset.channels == 1 ? [dataset.count, dataset.height, dataset.width]
                                         : [dataset.count, dataset.channels, dataset.height, dataset.width]
        try writeFile(encode(dataset.pixels, dimensions: dims), to: images)
        try writeFile(encode(dataset.labels.map { UInt8(clamping: $0) }, dimensions: [dataset.count]), to: labels)
    }
}

/// Bytes as `0x…` hex, for error messages.
func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
    "0x" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
}

/// Checks labels are in 0..<classCount (default: largest label + 1) and returns the count.
func checkedClassCount(_ labels: [Int32], classCount: Int?, file: String) throws -> Int {
    guard let lo = labels.min(), let hi = labels.max() else { return classCount ?? 0 }
    guard lo >= 0 else { throw DataError.malformed(file: file, reason: "negative label \(lo)") }
    if let classCount, hi >= classCount {
        throw DataError.malformed(file: file, reason: "label \(hi) is outside 0..<\(classCount)")
    }
    return classCount ?? Int(hi) + 1
}
