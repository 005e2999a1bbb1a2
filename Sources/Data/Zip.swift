// Just enough of the zip format (PKWARE APPNOTE) to read `.npz` archives: the
// central directory (with zip64 extensions, which NumPy always writes), stored
// and deflated entries, CRC-32 checks; and to write stored archives.

enum Zip {
    /// Every file in the archive at `path`, by name, decompressed.
    /// - Throws: `DataError` naming the archive (and entry) and what is wrong.
    static func entries(_ path: String) throws -> [String: [UInt8]] {
        let b = try readFile(path)
        // End of central directory: scan backwards over a possible comment.
        var eocd = -1
        var p = b.count - 22
        while p >= 0 && p >= b.count - 22 - 65_535 {
            if b[p] == 0x50, b[p + 1] == 0x4B, b[p + 2] == 0x05, b[p + 3] == 0x06 { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else {
            if b.count >= 4, b[0] == 0x50, b[1] == 0x4B {
                throw DataError.truncated(file: path, expected: b.count + 22, actual: b.count)
            }
            throw DataError.badMagic(file: path, expected: "a zip archive (PK..)", found: hex(b.prefix(4)))
        }
        var count = Int(b.littleEndian(at: eocd + 10, size: 2))
        var dirOffset = Int(b.littleEndian(at: eocd + 16, size: 4))
        if (count == 0xFFFF || dirOffset == 0xFFFF_FFFF), eocd >= 20,
           b.littleEndian(at: eocd - 20, size: 4) == 0x0706_4B50 {
            let z = Int(clamping: b.littleEndian(at: eocd - 20 + 8, size: 8))
            guard z >= 0, z <= b.count - 56, b.littleEndian(at: z, size: 4) == 0x0606_4B50 else {
                throw DataError.malformed(file: path, reason: "bad zip64 end-of-directory record")
            }
            count = Int(clamping: b.littleEndian(at: z + 32, size: 8))
            dirOffset = Int(clamping: b.littleEndian(at: z + 48, size: 8))
        }
        var out: [String: [UInt8]] = [:]
        var q = dirOffset
        for _ in 0..<count {
            guard q >= 0, q <= b.count - 46, b.littleEndian(at: q, size: 4) == 0x0201_4B50 else {
                throw DataError.malformed(file: path, reason: "corrupt zip central directory")
            }
            let method = Int(b.littleEndian(at: q + 10, size: 2))
            let crc = UInt32(b.littleEndian(at: q + 16, size: 4))
            var csize = Int(b.littleEndian(at: q + 20, size: 4))
            var usize = Int(b.littleEndian(at: q + 24, size: 4))
            let nameLength = Int(b.littleEndian(at: q + 28, size: 2))
            let extraLength = Int(b.littleEndian(at: q + 30, size: 2))
            let commentLength = Int(b.littleEndian(at: q + 32, size: 2))
            var local = Int(b.littleEndian(at: q + 42, size: 4))
            guard q + 46 + nameLength + extraLength <= b.count else {
                throw DataError.truncated(file: path, expected: q + 46 + nameLength + extraLength, actual: b.count)
            }
            let name = String(decoding: b[(q + 46)..<(q + 46 + nameLength)], as: UTF8.self)
            // Zip64 extra field: 64-bit values for the fields saturated above, in order.
            var e = q + 46 + nameLength
            let extraEnd = e + extraLength
            while e + 4 <= extraEnd {
                let id = b.littleEndian(at: e, size: 2), size = Int(b.littleEndian(at: e + 2, size: 2))
                if id == 1 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF, f + 8 <= extraEnd { usize = Int(clamping: b.littleEndian(at: f, size: 8)); f += 8 }
                    if csize == 0xFFFF_FFFF, f + 8 <= extraEnd { csize = Int(clamping: b.littleEndian(at: f, size: 8)); f += 8 }
                    if local == 0xFFFF_FFFF, f + 8 <= extraEnd { local = Int(clamping: b.littleEndian(at: f, size: 8)); f += 8 }
                }
                e += 4 + size
            }
            q = extraEnd + commentLength
            let entry = "\(path)[\(name)]"
            guard local >= 0, local <= b.count - 30, b.littleEndian(at: local, size: 4) == 0x0403_4B50 else {
                throw DataError.malformed(file: entry, reason: "bad local file header")
            }
            let start = local + 30 + Int(b.littleEndian(at: local + 26, size: 2)) + Int(b.littleEndian(at: local + 28, size: 2))
            guard csize <= b.count, usize >= 0, start + csize <= b.count else { throw DataError.truncated(file: entry, expected: start + csize, actual: b.count) }
            var data: [UInt8]
            switch method {
            case 0: data = [UInt8](b[start..<(start + csize)])
            case 8:
                do {
                    data = try b.withUnsafeBufferPointer { whole in
                        try inflate(UnsafeBufferPointer(rebasing: whole[start..<(start + csize)]), sizeHint: min(usize, 16 * csize + 65_536)).data
                    }
                } catch let err as InflateError {
                    throw DataError.malformed(file: entry, reason: "corrupt deflate data: \(err.reason)")
                }
            default:
                throw DataError.malformed(file: entry, reason: "unsupported zip compression method \(method); use stored or deflate (np.savez / np.savez_compressed)")
            }
            guard data.count == usize else {
                throw DataError.malformed(file: entry, reason: "size \(data.count) differs from the directory's \(usize)")
            }
            guard crc32(data) == crc else { throw DataError.malformed(file: entry, reason: "CRC-32 check failed") }
            out[name] = data
        }
        return out
    }

    /// A zip archive of stored (uncompressed) entries.
    static func storedArchive(_ files: [(name: String, data: [UInt8])]) -> [UInt8] {
        var out = [UInt8](), directory = [UInt8]()
        func le(_ v: Int, _ size: Int, _ a: inout [UInt8]) { for k in 0..<size { a.append(UInt8((v >> (8 * k)) & 0xFF)) } }
        for (name, data) in files {
            let offset = out.count, crc = Int(crc32(data)), nameBytes = Swift.Array(name.utf8)
            le(0x0403_4B50, 4, &out); le(20, 2, &out); le(0, 2, &out); le(0, 2, &out); le(0, 4, &out)
            le(crc, 4, &out); le(data.count, 4, &out); le(data.count, 4, &out)
            le(nameBytes.count, 2, &out); le(0, 2, &out)
            out += nameBytes + data
            le(0x0201_4B50, 4, &directory); le(20, 2, &directory); le(20, 2, &directory); le(0, 2, &directory)
            le(0, 2, &directory); le(0, 4, &directory); le(crc, 4, &directory)
            le(data.count, 4, &directory); le(data.count, 4, &directory); le(nameBytes.count, 2, &directory)
            le(0, 2, &directory); le(0, 2, &directory); le(0, 2, &directory); le(0, 2, &directory); le(0, 4, &directory)
            le(offset, 4, &directory)
            directory += nameBytes
        }
        let dirOffset = out.count
        out += directory
        le(0x0605_4B50, 4, &out); le(0, 2, &out); le(0, 2, &out)
        le(files.count, 2, &out); le(files.count, 2, &out); le(directory.count, 4, &out); le(dirOffset, 4, &out); le(0, 2, &out)
        return out
    }
}
