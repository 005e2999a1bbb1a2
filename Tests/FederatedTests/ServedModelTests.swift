import Foundation
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
        let served = try ServedModel(model, where: shared, directory: NSTemporaryDirectory())
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
}
