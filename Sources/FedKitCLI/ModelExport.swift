import Data
import Federated
import Foundation
import NN
import Tensor

/// Writes the tensors of a FedKit archive (a server's checkpoint or final model, a client's
/// local state) in a format other frameworks load: NumPy's `.npz` or `.safetensors`, one
/// Float32 array per state-dictionary name (`conv1.weight`, `bn1.running_mean`, …, the names
/// of the FedBN reference's PyTorch model).
public enum ModelExport {
    /// What an archive says about itself; every field is optional, so the checkpoint's and
    /// the client state's metadata both decode.
    struct Info: Codable {
        var round: UInt64?
        var model: ModelSpec?
        var client: String?
    }

    public struct Summary: Sendable {
        public var tensors: Int
        public var values: Int
        public var round: UInt64?
        public var model: ModelSpec?
    }

    /// Reads `archive` and writes its tensors to `out` (`.npz` or `.safetensors`), atomically.
    /// - Throws: `ExportError` naming a missing archive or an unknown output format, or the
    ///   archive's own error when it is damaged.
    @discardableResult
    public static func export(_ archive: String, to out: String) throws -> Summary {
        let lower = out.lowercased()
        guard lower.hasSuffix(".npz") || lower.hasSuffix(".safetensors") else {
            throw ExportError("\(out): expected a name ending in .npz or .safetensors")
        }
        guard let (tensors, info) = try TensorArchive.read(archive, as: Info.self) else {
            throw ExportError("\(archive): no such file")
        }
        var metadata = ["format": "pt", "source": "FedKit"]
        if let round = info.round { metadata["round"] = String(round) }
        if let model = info.model { metadata["model"] = "\(model.architecture.rawValue)/\(model.norm.rawValue)" }
        if let client = info.client { metadata["client"] = client }
        let bytes = lower.hasSuffix(".npz") ? npz(tensors) : safetensors(tensors, metadata: metadata)
        try AtomicFile.write(Foundation.Data(bytes), to: out)
        return Summary(tensors: tensors.entries.count, values: tensors.entries.reduce(0) { $0 + $1.tensor.count },
                       round: info.round, model: info.model)
    }

    /// The tensor's values as little-endian Float32 bytes (the machines FedKit runs on are
    /// little-endian, so this is its memory as it is).
    static func littleEndianBytes(_ t: Tensor) -> [UInt8] {
        [UInt8](UnsafeRawBufferPointer(start: t.data, count: t.count * 4))
    }

    static func npz(_ tensors: StateDictionary) -> [UInt8] {
        NumPy.npz(tensors.entries.map { ($0.name, "<f4", $0.tensor.shape, littleEndianBytes($0.tensor)) })
    }

    /// The safetensors layout: an 8-byte little-endian header length, a JSON header naming
    /// each tensor's dtype, shape and byte range (padded with spaces to 8 bytes), the data.
    static func safetensors(_ tensors: StateDictionary, metadata: [String: String]) -> [UInt8] {
        var header: [String: Any] = ["__metadata__": metadata]
        var data = [UInt8]()
        for (name, t) in tensors.entries {
            let begin = data.count
            data += littleEndianBytes(t)
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [begin, data.count]] as [String: Any]
        }
        var json = [UInt8]((try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Foundation.Data("{}".utf8))
        json += [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8)
        var out = [UInt8]()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json + data
    }
}

public struct ExportError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
