import Crypto
import Foundation
import NN
import Tensor

/// A file holding named Float32 tensors and a JSON metadata record: the server's
/// checkpoints and the clients' local state.
///
/// Layout: the 8 bytes `FEDKIT01`, a little-endian UInt64 header length, the JSON
/// header (metadata and, per tensor, name, shape and element offset), the tensors'
/// elements as little-endian Float32, and a SHA-256 of everything before it. A file
/// whose digest does not match is refused whole, so a torn or tampered file never
/// loads. Written with `AtomicFile`.
public enum TensorArchive {
    static let magic = Data("FEDKIT01".utf8)

    struct Header<Metadata: Codable>: Codable {
        struct Entry: Codable { var name: String; var shape: [Int]; var offset: Int }
        var metadata: Metadata
        var tensors: [Entry]
    }

    /// Encodes `tensors` and `metadata` into the archive format.
    public static func encode<M: Codable>(_ tensors: StateDictionary, metadata: M) throws -> Data {
        var out = Data()
        try stream(tensors, metadata: metadata) { out.append(contentsOf: $0) }
        return out
    }

    /// Passes the archive's bytes in order to `append`: the prefix and header, then each
    /// tensor straight from its memory, then the digest.
    static func stream<M: Codable>(_ tensors: StateDictionary, metadata: M, to append: (UnsafeRawBufferPointer) throws -> Void) throws {
        var entries: [Header<M>.Entry] = []
        var offset = 0
        for (name, t) in tensors.entries {
            entries.append(.init(name: name, shape: t.shape, offset: offset))
            offset += t.count
        }
        let header = try JSONEncoder().encode(Header(metadata: metadata, tensors: entries))
        var prefix = magic
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { prefix.append(contentsOf: $0) }
        prefix.append(header)
        var digest = SHA256()
        func put(_ raw: UnsafeRawBufferPointer) throws {
            digest.update(bufferPointer: raw)
            try append(raw)
        }
        try prefix.withUnsafeBytes { try put($0) }
        for (_, t) in tensors.entries {
            // Float32 is little-endian on every platform FedKit runs on.
            try put(UnsafeRawBufferPointer(start: t.data, count: t.count * 4))
        }
        let sum = Data(digest.finalize())
        try sum.withUnsafeBytes { try append($0) }
    }

    /// Decodes an archive made by `encode`.
    /// - Throws: `FederatedError.corruptFile` saying what is wrong (`path` names the file in the message).
    public static func decode<M: Codable>(_ data: Data, as: M.Type, path: String = "archive") throws -> (tensors: StateDictionary, metadata: M) {
        func corrupt(_ reason: String) -> FederatedError { .corruptFile(path: path, reason: reason) }
        guard data.count >= 16 + 32, data.prefix(8) == magic else { throw corrupt("missing the FEDKIT01 header") }
        let body = data.prefix(data.count - 32)
        guard Data(SHA256.hash(data: body)) == data.suffix(32) else {
            throw corrupt("SHA-256 mismatch (the file is truncated or was modified)")
        }
        let headerLength = data.withUnsafeBytes { Int(UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 8, as: UInt64.self))) }
        guard headerLength >= 0, 16 + headerLength <= body.count else { throw corrupt("header length \(headerLength) exceeds the file") }
        let header: Header<M>
        do { header = try JSONDecoder().decode(Header<M>.self, from: data.subdata(in: 16..<(16 + headerLength))) }
        catch { throw corrupt("unreadable header: \(error)") }
        let payloadStart = 16 + headerLength
        let available = (body.count - payloadStart) / 4
        var dict = StateDictionary()
        try data.withUnsafeBytes { raw in
            for e in header.tensors {
                guard e.shape.allSatisfy({ $0 >= 0 }) else { throw corrupt("tensor \(e.name) has shape \(e.shape)") }
                let n = e.shape.reduce(1, *)
                guard e.offset >= 0, e.offset + n <= available else {
                    throw corrupt("tensor \(e.name) (\(n) elements at \(e.offset)) lies outside the data (\(available) elements)")
                }
                let t = Tensor(zeros: e.shape)
                let src = raw.baseAddress! + payloadStart + e.offset * 4
                UnsafeMutableRawPointer(t.data).copyMemory(from: src, byteCount: n * 4)
                dict[e.name] = t
            }
        }
        return (dict, header.metadata)
    }

    /// Atomically writes an archive to `path`, each tensor straight from its memory (no
    /// copy of the model is made, however large it is).
    public static func write<M: Codable>(_ tensors: StateDictionary, metadata: M, to path: String) throws {
        try AtomicFile.write(to: path) { append in try stream(tensors, metadata: metadata, to: append) }
    }

    /// Reads the archive at `path`, or returns nil when there is no file.
    public static func read<M: Codable>(_ path: String, as type: M.Type) throws -> (tensors: StateDictionary, metadata: M)? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) }
        catch { throw FederatedError.corruptFile(path: path, reason: "cannot read: \(error.localizedDescription)") }
        return try decode(data, as: type, path: path)
    }
}
