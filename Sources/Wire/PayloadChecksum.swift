import CCRC32C
import Crypto
import Foundation
import NIOCore

/// The checksum over a whole chunked payload, verified before anything is decoded.
///
/// SHA-256 is the default and every receiver supports it. CRC-32C is several times faster
/// (one CPU instruction per 8 bytes where available) and is used only between peers that both
/// announced `WireProtocol.crc32cCapability`; it detects accidental corruption, while TLS
/// already authenticates every byte against tampering.
public enum PayloadChecksum: String, Sendable, CaseIterable {
    case sha256
    case crc32c
}

/// CRC-32C (Castagnoli) of byte sequences, continued piece by piece.
public struct CRC32C: Sendable, Equatable {
    /// The checksum of everything passed to `update` so far.
    public private(set) var value: UInt32 = 0

    public init() {}

    /// Continues the checksum with `bytes`.
    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        value = fedkit_crc32c(value, base, bytes.count)
    }

    /// Continues the checksum with `data`.
    public mutating func update(_ data: Data) {
        data.withUnsafeBytes { update($0) }
    }

    /// `value` as the 4 big-endian bytes of `ChunkedPayload.crc32c`.
    public var bigEndianBytes: Data {
        withUnsafeBytes(of: value.bigEndian) { Data($0) }
    }

    /// The CRC-32C of `buffer`'s readable bytes.
    public static func checksum(of buffer: ByteBuffer) -> UInt32 {
        var crc = CRC32C()
        buffer.withUnsafeReadableBytes { crc.update($0) }
        return crc.value
    }
}
