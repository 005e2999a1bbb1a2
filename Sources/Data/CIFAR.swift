// CIFAR-10's binary batches (`data_batch_1.bin` … `data_batch_5.bin`,
// `test_batch.bin`): records of one label byte followed by 3×32×32 pixel bytes
// (red plane, green plane, blue plane, each row-major).

/// Reads CIFAR-10 binary batches.
public enum CIFAR10 {
    static let side = 32
    static let recordSize = 1 + 3 * 32 * 32

    /// Loads and concatenates batch files.
    /// - Parameters:
    ///   - batches: paths of `*.bin` batch files (gzip-compressed files are accepted).
    ///   - domain: name given to the dataset.
    ///   - shape: convert images to this shape; `nil` keeps 3×32×32.
    /// - Throws: `DataError` naming the file: not a whole number of records, or a label
    ///   outside 0–9.
    public static func load(batches: [String], domain: String, shape: ImageShape? = nil) throws -> Dataset {
        var pixels = [UInt8](), labels = [Int32]()
        let plane = 3 * side * side
        for path in batches {
            let bytes = try gunzipIfNeeded(try readFile(path), path: path)
            guard !bytes.isEmpty, bytes.count % recordSize == 0 else {
                let whole = bytes.count / recordSize
                throw DataError.truncated(file: path, expected: (whole + 1) * recordSize, actual: bytes.count)
            }
            let n = bytes.count / recordSize
            pixels.reserveCapacity(pixels.count + n * plane)
            for i in 0..<n {
                let r = i * recordSize
                guard bytes[r] < 10 else {
                    throw DataError.malformed(file: path, reason: "record \(i) has label \(bytes[r]); CIFAR-10 labels are 0–9 (is this a CIFAR-100 file?)")
                }
                labels.append(Int32(bytes[r]))
                pixels += bytes[(r + 1)..<(r + recordSize)]
            }
        }
        let (out, s) = conform(pixels, count: labels.count, channels: 3, height: side, width: side, to: shape)
        return Dataset(domain: domain, channels: s.channels, height: s.height, width: s.width,
                       pixels: out, labels: labels, classCount: 10)
    }

    /// CIFAR-10 binary bytes of a 3×32×32 dataset.
    public static func encode(_ dataset: Dataset) -> [UInt8] {
        precondition(dataset.channels == 3 && dataset.height == side && dataset.width == side,
                     "CIFAR10.encode: images must be 3×32×32")
        var out = [UInt8]()
        out.reserveCapacity(dataset.count * recordSize)
        for i in 0..<dataset.count {
            out.append(UInt8(clamping: dataset.labels[i]))
            out += dataset.image(i)
        }
        return out
    }
}
