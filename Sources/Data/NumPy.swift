// NumPy's `.npy` arrays and `.npz` archives (a zip of `.npy` files, stored or
// deflated). Header: "\x93NUMPY", version, header length, then a Python dict
// literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, H, W, C), }.

/// Reads image datasets stored as NumPy arrays.
public enum NumPy {
    /// Element types read from `.npy` files.
    enum DType: String {
        case u1 = "|u1", i1 = "|i1", u2 = "<u2", i2 = "<i2", u4 = "<u4", i4 = "<i4", u8 = "<u8", i8 = "<i8"
        case f4 = "<f4", f8 = "<f8", b1 = "|b1"

        var size: Int {
            switch self {
            case .u1, .i1, .b1: 1
            case .u2, .i2: 2
            case .u4, .i4, .f4: 4
            case .u8, .i8, .f8: 8
            }
        }

        var isInteger: Bool { self != .f4 && self != .f8 }

        init?(descr: String) {
            var d = descr
            if d.hasPrefix("=") { d = "<" + d.dropFirst() }  // native order on little-endian machines
            if d == "<u1" || d == "u1" { d = "|u1" }
            if d == "<i1" || d == "i1" { d = "|i1" }
            if d == "<b1" { d = "|b1" }
            self.init(rawValue: d)
        }
    }

    /// A decoded `.npy` array.
    struct Array {
        var dtype: DType
        var shape: [Int]
        /// Raw little-endian element bytes, C order.
        var data: ArraySlice<UInt8>

        var count: Int { shape.reduce(1, *) }

        /// Element `i` as a Double.
        @inline(__always) func value(_ i: Int) -> Double {
            let o = data.startIndex + i * dtype.size
            switch dtype {
            case .u1, .b1: return Double(data[o])
            case .i1: return Double(Int8(bitPattern: data[o]))
            case .u2: return Double(UInt16(data[o]) | UInt16(data[o + 1]) << 8)
            case .i2: return Double(Int16(bitPattern: UInt16(data[o]) | UInt16(data[o + 1]) << 8))
            case .u4: return Double(raw32(o))
            case .i4: return Double(Int32(bitPattern: raw32(o)))
            case .u8: return Double(raw64(o))
            case .i8: return Double(Int64(bitPattern: raw64(o)))
            case .f4: return Double(Float(bitPattern: raw32(o)))
            case .f8: return Double(bitPattern: raw64(o))
            }
        }

        @inline(__always) func raw32(_ o: Int) -> UInt32 {
            UInt32(data[o]) | UInt32(data[o + 1]) << 8 | UInt32(data[o + 2]) << 16 | UInt32(data[o + 3]) << 24
        }

        @inline(__always) func raw64(_ o: Int) -> UInt64 {
            UInt64(raw32(o)) | UInt64(raw32(o + 4)) << 32
        }
    }

    // MARK: public loaders

    /// Loads an `.npz` archive holding images and labels as arrays named `x` and `y`,
    /// or `images` and `labels`.
    ///
    /// Images: uint8 (0–255) or float (0–1, or 0–255 when any value exceeds 1;
    /// other integers are clamped to 0–255), shaped (N, H, W) grey, (N, H, W, C)
    /// or (N, C, H, W) with C 1 or 3. Labels: integers, shape (N) or (N, 1).
    /// - Parameters:
    ///   - path: the `.npz` file.
    ///   - domain: name given to the dataset.
    ///   - shape: convert images to this shape; `nil` keeps them as stored.
    ///   - classCount: number of classes; by default the largest label + 1.
    /// - Throws: `DataError` naming the file (and the array) and what is wrong.
    public static func load(npz path: String, domain: String, shape: ImageShape? = .digits,
                            classCount: Int? = nil) throws -> Dataset {
        let entries = try Zip.entries(path)
        func find(_ names: [String]) -> (String, [UInt8])? {
            for n in names { if let e = entries[n + ".npy"] ?? entries[n] { return (n, e) } }
            return nil
        }
        guard let (xName, xBytes) = find(["x", "images", "x_train", "x_test"]),
              let (yName, yBytes) = find(["y", "labels", "y_train", "y_test"]) else {
            throw DataError.malformed(file: path, reason: "no image and label arrays: expected x and y, or images and labels; found \(entries.keys.sorted().joined(separator: ", "))")
        }
        let x = try parse(xBytes, file: "\(path)[\(xName)]")
        let y = try parse(yBytes, file: "\(path)[\(yName)]")
        return try dataset(images: x, labels: y, imagesFile: "\(path)[\(xName)]", labelsFile: "\(path)[\(yName)]",
                           domain: domain, shape: shape, classCount: classCount)
    }

    /// Loads an image array and a label array from two `.npy` files.
    /// - Throws: `DataError` naming the file and what is wrong.
    public static func load(images: String, labels: String, domain: String, shape: ImageShape? = .digits,
                            classCount: Int? = nil) throws -> Dataset {
        let x = try parse(try readFile(images), file: images)
        let y = try parse(try readFile(labels), file: labels)
        return try dataset(images: x, labels: y, imagesFile: images, labelsFile: labels,
                           domain: domain, shape: shape, classCount: classCount)
    }

    /// `.npy` bytes (format 1.0) of a C-order array. `descr` is a NumPy type string
    /// such as `"|u1"`, `"<f4"` or `"<i8"`; `data` holds the little-endian elements.
    public static func encode(descr: String, shape: [Int], data: [UInt8]) -> [UInt8] {
        let dims = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(dims), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out: [UInt8] = [0x93] + Swift.Array("NUMPY".utf8) + [1, 0]
        out += [UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)]
        return out + Swift.Array(header.utf8) + data
    }

    /// `.npz` bytes (a stored zip) of named arrays, each entry `NAME.npy`; `np.load` reads it.
    public static func npz(_ arrays: [(name: String, descr: String, shape: [Int], data: [UInt8])]) -> [UInt8] {
        Zip.storedArchive(arrays.map { ($0.name + ".npy", encode(descr: $0.descr, shape: $0.shape, data: $0.data)) })
    }

    /// Writes a dataset as an `.npz` archive (stored entries `x.npy`: uint8 N×C×H×W,
    /// `y.npy`: int64 labels).
    /// - Throws: `DataError.io` when the file cannot be written.
    public static func writeNPZ(_ dataset: Dataset, to path: String) throws {
        var labels = [UInt8]()
        for l in dataset.labels { for k in 0..<8 { labels.append(UInt8((Int64(l) >> (8 * Int64(k))) & 0xFF)) } }
        let x = encode(descr: "|u1", shape: [dataset.count, dataset.channels, dataset.height, dataset.width], data: dataset.pixels)
        let y = encode(descr: "<i8", shape: [dataset.count], data: labels)
        try writeFile(Zip.storedArchive([("x.npy", x), ("y.npy", y)]), to: path)
    }

    // MARK: parsing

    /// Decodes `.npy` bytes.
    static func parse(_ bytes: [UInt8], file: String) throws -> Array {
        let magic: [UInt8] = [0x93] + Swift.Array("NUMPY".utf8)
        guard bytes.count >= 10 else { throw DataError.truncated(file: file, expected: 10, actual: bytes.count) }
        guard Swift.Array(bytes[0..<6]) == magic else {
            throw DataError.badMagic(file: file, expected: "\\x93NUMPY", found: hex(bytes.prefix(6)))
        }
        let major = bytes[6]
        let headerLength: Int, headerStart: Int
        switch major {
        case 1: headerLength = Int(bytes.littleEndian(at: 8, size: 2)); headerStart = 10
        case 2, 3:
            guard bytes.count >= 12 else { throw DataError.truncated(file: file, expected: 12, actual: bytes.count) }
            headerLength = Int(bytes.littleEndian(at: 8, size: 4)); headerStart = 12
        default: throw DataError.malformed(file: file, reason: "unsupported .npy format version \(major)")
        }
        guard bytes.count >= headerStart + headerLength else {
            throw DataError.truncated(file: file, expected: headerStart + headerLength, actual: bytes.count)
        }
        guard let header = String(bytes: bytes[headerStart..<(headerStart + headerLength)], encoding: .utf8) else {
            throw DataError.malformed(file: file, reason: "header is not text")
        }
        guard let descr = dictValue(header, key: "descr") else {
            throw DataError.malformed(file: file, reason: "header has no 'descr': \(header.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        let d = descr.trimmingCharacters(in: CharacterSet(charactersIn: "'\" "))
        guard let dtype = DType(descr: d) else { throw DataError.unsupportedDType(file: file, dtype: "'\(d)'") }
        if let fortran = dictValue(header, key: "fortran_order"), fortran.hasPrefix("True") {
            throw DataError.malformed(file: file, reason: "Fortran-ordered arrays are not supported; save with np.ascontiguousarray")
        }
        guard let shapeText = dictValue(header, key: "shape"), shapeText.hasPrefix("(") else {
            throw DataError.malformed(file: file, reason: "header has no 'shape' tuple")
        }
        let inner = shapeText.dropFirst().prefix { $0 != ")" }
        var shape: [Int] = []
        for part in inner.split(separator: ",") {
            let t = part.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "L", with: "")
            guard let v = Int(t), v >= 0 else { throw DataError.malformed(file: file, reason: "bad shape \(shapeText)") }
            shape.append(v)
        }
        let start = headerStart + headerLength
        guard let needed = checkedProduct(shape + [dtype.size]), needed <= Int.max - start else {
            throw DataError.malformed(file: file, reason: "impossible shape \(shape)")
        }
        guard bytes.count >= start + needed else {
            throw DataError.truncated(file: file, expected: start + needed, actual: bytes.count)
        }
        return Array(dtype: dtype, shape: shape, data: bytes[start..<(start + needed)])
    }

    /// The text after `'key':` in a Python dict literal, up to the next top-level comma.
    static func dictValue(_ header: String, key: String) -> String? {
        guard let r = header.range(of: "'\(key)'") ?? header.range(of: "\"\(key)\"") else { return nil }
        var rest = header[r.upperBound...].drop { $0 == " " }
        guard rest.first == ":" else { return nil }
        rest = rest.dropFirst().drop { $0 == " " }
        var depth = 0, end = rest.startIndex
        while end < rest.endIndex {
            let ch = rest[end]
            if ch == "(" { depth += 1 }
            if ch == ")" { depth -= 1; if depth == 0 { end = rest.index(after: end); break } }
            if (ch == "," || ch == "}") && depth == 0 { break }
            end = rest.index(after: end)
        }
        return String(rest[rest.startIndex..<end])
    }

    /// Builds a dataset from decoded image and label arrays.
    static func dataset(images x: Array, labels y: Array, imagesFile: String, labelsFile: String,
                        domain: String, shape target: ImageShape?, classCount: Int?) throws -> Dataset {
        guard y.dtype.isInteger && y.dtype != .b1 else {
            throw DataError.unsupportedDType(file: labelsFile, dtype: "'\(y.dtype.rawValue)' (labels must be integers)")
        }
        guard y.shape.count == 1 || (y.shape.count == 2 && y.shape[1] == 1) else {
            throw DataError.malformed(file: labelsFile, reason: "labels have shape \(y.shape); expected (N) or (N, 1)")
        }
        guard x.dtype != .b1 else { throw DataError.unsupportedDType(file: imagesFile, dtype: "'|b1' (bool images)") }
        let n: Int, c: Int, h: Int, w: Int, channelsLast: Bool
        switch x.shape.count {
        case 3: (n, c, h, w, channelsLast) = (x.shape[0], 1, x.shape[1], x.shape[2], false)
        case 4 where x.shape[3] == 1 || x.shape[3] == 3:
            (n, c, h, w, channelsLast) = (x.shape[0], x.shape[3], x.shape[1], x.shape[2], true)
        case 4 where x.shape[1] == 1 || x.shape[1] == 3:
            (n, c, h, w, channelsLast) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3], false)
        default:
            throw DataError.malformed(file: imagesFile, reason: "images have shape \(x.shape); expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C 1 or 3")
        }
        guard y.shape[0] == n else { throw DataError.countMismatch(file: labelsFile, images: n, labels: y.shape[0]) }
        var labels = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            let v = y.value(i)
            guard v >= 0, v <= Double(Int32.max) else {
                throw DataError.malformed(file: labelsFile, reason: "label \(Int64(v)) at index \(i) is negative or too large")
            }
            labels[i] = Int32(v)
        }
        let classes = try checkedClassCount(labels, classCount: classCount, file: labelsFile)
        // Bytes in N×C×H×W order.
        let plane = h * w
        var pixels = [UInt8](repeating: 0, count: n * c * plane)
        if x.dtype == .u1 && !channelsLast {
            pixels = [UInt8](x.data)
        } else {
            var scale = 1.0
            if !x.dtype.isInteger {
                var maxValue = 0.0
                for i in 0..<x.count { maxValue = Swift.max(maxValue, x.value(i)) }
                scale = maxValue <= 1.0 ? 255 : 1
            }
            for i in 0..<n {
                for ch in 0..<c {
                    for k in 0..<plane {
                        let src = channelsLast ? (i * plane + k) * c + ch : (i * c + ch) * plane + k
                        let v = x.value(src) * scale
                        pixels[(i * c + ch) * plane + k] = UInt8(Swift.min(Swift.max(v.isNaN ? 0 : v + 0.5, 0), 255))
                    }
                }
            }
        }
        let (out, s) = conform(pixels, count: n, channels: c, height: h, width: w, to: target)
        return Dataset(domain: domain, channels: s.channels, height: s.height, width: s.width,
                       pixels: out, labels: labels, classCount: classes)
    }
}

import Foundation
