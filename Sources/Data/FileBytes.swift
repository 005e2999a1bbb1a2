import Foundation

/// The whole file at `path`, or `DataError.io` naming it.
func readFile(_ path: String) throws -> [UInt8] {
    guard FileManager.default.fileExists(atPath: path) else {
        throw DataError.io(file: path, reason: "no such file")
    }
    do {
        return [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: path)))
    } catch {
        throw DataError.io(file: path, reason: "cannot read: \(error.localizedDescription)")
    }
}

/// The product of `factors`, or nil if it overflows (a malicious or corrupt header).
func checkedProduct(_ factors: [Int]) -> Int? {
    var p = 1
    for f in factors {
        let (r, overflow) = p.multipliedReportingOverflow(by: f)
        if overflow || f < 0 { return nil }
        p = r
    }
    return p
}

/// Writes `bytes` to `path`, or throws `DataError.io` naming it.
func writeFile(_ bytes: [UInt8], to path: String) throws {
    do {
        try Foundation.Data(bytes).write(to: URL(fileURLWithPath: path))
    } catch {
        throw DataError.io(file: path, reason: "cannot write: \(error.localizedDescription)")
    }
}

/// Decompresses `bytes` if they are gzip, naming `path` in any error.
func gunzipIfNeeded(_ bytes: [UInt8], path: String) throws -> [UInt8] {
    guard isGzip(bytes) else { return bytes }
    do {
        return try gunzip(bytes)
    } catch let e as InflateError {
        throw DataError.malformed(file: path, reason: "corrupt gzip data: \(e.reason)")
    }
}

extension Array where Element == UInt8 {
    /// Big-endian UInt32 at byte `offset` (caller checks bounds).
    func bigEndianUInt32(at offset: Int) -> UInt32 {
        UInt32(self[offset]) << 24 | UInt32(self[offset + 1]) << 16 | UInt32(self[offset + 2]) << 8 | UInt32(self[offset + 3])
    }

    /// Little-endian unsigned integer of `size` bytes at `offset` (caller checks bounds).
    func littleEndian(at offset: Int, size: Int) -> UInt64 {
        var v: UInt64 = 0
        for k in 0..<size { v |= UInt64(self[offset + k]) << UInt64(8 * k) }
        return v
    }
}
