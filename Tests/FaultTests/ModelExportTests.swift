import Foundation
import NN
import Tensor
import XCTest
@testable import Data
@testable import FedKitCLI
@testable import Federated

/// `fed-sim export`: a model's tensors as .npz and .safetensors, bit for bit.
final class ModelExportTests: XCTestCase {
    struct Meta: Codable { var round: UInt64; var model: ModelSpec; var strategy: String }

    func testExportedTensorsAreTheArchivesBitForBit() throws {
        let dir = NSTemporaryDirectory() + "fedkit-export-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spec = ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 16, 8], groups: 2, seed: 5)
        let model = try spec.build()
        var rng = SeededGenerator(seed: 9)
        for e in model.entries { e.value.fillNormal(std: 0.3, using: &rng) }
        let state = model.snapshot()
        try TensorArchive.write(state, metadata: Meta(round: 7, model: spec, strategy: "fedbn"), to: dir + "/model.fkt")
        func values(_ t: Tensor) -> [UInt8] { [UInt8](UnsafeRawBufferPointer(start: t.data, count: t.count * 4)) }

        let summary = try ModelExport.export(dir + "/model.fkt", to: dir + "/model.npz")
        XCTAssertEqual(summary.tensors, state.entries.count)
        XCTAssertEqual(summary.round, 7)
        XCTAssertEqual(summary.model, spec)
        let entries = try Zip.entries(dir + "/model.npz")
        XCTAssertEqual(Set(entries.keys), Set(state.names.map { $0 + ".npy" }))
        for (name, t) in state.entries {
            let a = try NumPy.parse(try XCTUnwrap(entries[name + ".npy"]), file: name)
            XCTAssertEqual(a.dtype, .f4, name)
            XCTAssertEqual(a.shape, t.shape, name)
            XCTAssertEqual([UInt8](a.data), values(t), name)
        }

        try ModelExport.export(dir + "/model.fkt", to: dir + "/model.safetensors")
        let bytes = [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: dir + "/model.safetensors")))
        let n = Int(bytes[0..<8].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        XCTAssertEqual(n % 8, 0, "the header is padded to 8 bytes")
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: Foundation.Data(bytes[8..<8 + n])) as? [String: Any])
        XCTAssertEqual(header["__metadata__"] as? [String: String], ["format": "pt", "source": "FedKit", "round": "7", "model": "digit-cnn/batch"])
        let data = bytes[(8 + n)...]
        var covered = 0
        for (name, t) in state.entries {
            let h = try XCTUnwrap(header[name] as? [String: Any], name)
            XCTAssertEqual(h["dtype"] as? String, "F32")
            XCTAssertEqual(h["shape"] as? [Int], t.shape)
            let range = try XCTUnwrap(h["data_offsets"] as? [Int])
            XCTAssertEqual(Array(data[(data.startIndex + range[0])..<(data.startIndex + range[1])]), values(t), name)
            covered += range[1] - range[0]
        }
        XCTAssertEqual(covered, data.count, "the tensors cover the data exactly")

        XCTAssertThrowsError(try ModelExport.export(dir + "/model.fkt", to: dir + "/model.pt")) { XCTAssertTrue("\($0)".contains(".npz or .safetensors"), "\($0)") }
        XCTAssertThrowsError(try ModelExport.export(dir + "/none.fkt", to: dir + "/x.npz")) { XCTAssertTrue("\($0)".contains("none.fkt: no such file"), "\($0)") }
        // A damaged archive is refused by its checksum; nothing is written.
        var damaged = [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: dir + "/model.fkt")))
        damaged[damaged.count / 2] ^= 0x40
        try Foundation.Data(damaged).write(to: URL(fileURLWithPath: dir + "/damaged.fkt"))
        XCTAssertThrowsError(try ModelExport.export(dir + "/damaged.fkt", to: dir + "/d.npz"))
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/d.npz"))
    }
}
