import Foundation
import Logging
import NN
import Tensor
import Wire
import XCTest
@testable import Federated

final class ServedModelTests: XCTestCase {
    /// While served, the shared tensors are read from the page cache and the model's own read
    /// zero; restored, the model is what it was, bit for bit. Tensors not shared are untouched.
    func testServedTensorsAreTheModelsAndRestoreBringsThemBack() throws {
        let model = try ModelSpec.digitCNN(norm: .batch, widths: [4, 4, 8, 300, 8], seed: 5).build()
        var rng = SeededGenerator(seed: 3)
        for e in model.entries { e.value.fillNormal(std: 1, using: &rng) }
        let before = model.entries.map { ($0.name, $0.value.values.map(\.bitPattern)) }
        let shared: (StateEntry) -> Bool = { !$0.isBatchNorm }
        let largest = model.entries.filter(shared).max { $0.value.count < $1.value.count }!.value
        XCTAssertGreaterThan(residentFraction(largest.data, largest.count * 4), 0.99)
        let served = try ServedModel(model, where: shared, directory: NSTemporaryDirectory())
        XCTAssertLessThan(residentFraction(largest.data, largest.count * 4), 0.01, "the model's memory was not given back")
        let sent = served.wireTensors()
        XCTAssertEqual(sent.map(\.name), model.entries.filter(shared).map(\.name))
        for (e, (name, values)) in zip(model.entries, before) {
            if shared(e) {
                XCTAssertTrue(e.value.buffer.allSatisfy { $0 == 0 }, "\(name) kept its values in memory")
                let wire = try XCTUnwrap(sent.first { $0.name == name })
                XCTAssertEqual(wire.shape, e.value.shape)
                XCTAssertEqual(try wire.floats().map(\.bitPattern), values, "\(name) served other values")
            } else {
                XCTAssertEqual(e.value.values.map(\.bitPattern), values, "\(name) is not shared and was touched")
            }
        }
        try served.restore()
        for (e, (name, values)) in zip(model.entries, before) { XCTAssertEqual(e.value.values.map(\.bitPattern), values, "\(name) not restored") }
        XCTAssertEqual(try sent[0].floats().count, model.entries.first(where: shared)!.value.count, "the views outlived nothing")
    }

    /// The model is kept in the page cache unless clipping reads it, the configuration says
    /// no, or the directory is itself in memory; the start-up log says which.
    func testTheModelStaysInMemoryWhereThePageCacheWouldNotServe() throws {
        let logger = Logger(label: "test")
        var c = CoordinatorConfiguration(strategy: .fedavg, model: .digitCNN(norm: .batch, widths: [4, 4, 8, 16, 8], seed: 5), rounds: 1)
        let tmpfs = UnnamedFile.isMemoryBacked(NSTemporaryDirectory())
        let plain = try Coordinator(configuration: c, logger: logger)
        XCTAssertEqual(plain.modelStaysInMemoryBecause == nil, !tmpfs, plain.modelPlacement)
        if !tmpfs { XCTAssertTrue(plain.modelPlacement.contains("page cache"), plain.modelPlacement) }
        c.maxUpdateNorm = 1
        let clipping = try Coordinator(configuration: c, logger: logger)
        XCTAssertTrue(clipping.modelPlacement.contains("stays in memory while rounds train: --max-update-norm"), clipping.modelPlacement)
        c.maxUpdateNorm = nil
        c.modelInPageCache = false
        XCTAssertEqual(try Coordinator(configuration: c, logger: logger).modelStaysInMemoryBecause, "so configured")
        c.modelInPageCache = true
        if FileManager.default.fileExists(atPath: "/dev/shm"), UnnamedFile.isMemoryBacked("/dev/shm") {
            c.stateDirectory = "/dev/shm/fedkit-served-\(getpid())"
            defer { try? FileManager.default.removeItem(atPath: c.stateDirectory!) }
            let inMemory = try Coordinator(configuration: c, logger: logger)
            XCTAssertTrue(inMemory.modelPlacement.contains("tmpfs"), inMemory.modelPlacement)
        }
    }
}
