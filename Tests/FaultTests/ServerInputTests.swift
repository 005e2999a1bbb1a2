import Foundation
import NN
import Transport
import Wire
import XCTest
@testable import Federated

/// What a client does with requests it cannot use — tensors of another model, undecodable
/// bytes: it answers with an `Error` naming the reason (which ends the session), keeps its
/// model as it was, and can serve the next session; it neither exits nor leaves the
/// connection half open.
final class ServerInputTests: XCTestCase {
    /// Runs one session of `runtime` against an in-process server: sends `request`, returns
    /// the client's first answer and how `serve` ended.
    func exchange(_ runtime: ClientRuntime, _ request: Envelope) async throws -> (answer: Envelope?, outcome: ClientRuntime.Outcome) {
        let server = try await InProcess.startServer()
        let port = server.port
        let client = Task { () throws -> ClientRuntime.Outcome in
            var hello = InProcess.hello(runtime.name, declaredExamples: 0, domain: "")
            hello.dataset = runtime.datasetSummary
            return try await runtime.serve(try await InProcess.connect(runtime.name, port: port, hello: hello))
        }
        var sessions = server.connections.makeAsyncIterator()
        let next = await sessions.next()
        let session = try XCTUnwrap(next)
        var inbound = session.inbound.makeAsyncIterator()
        try await session.send(request)
        let answer = try? await inbound.next()
        if case .evaluateResult? = answer?.body {
            try await session.send(Envelope(.goodbye(.with { $0.reason = "done" })))
        }
        let outcome = try await client.value
        await session.close()
        await server.close()
        return (answer, outcome)
    }

    func testAnUnusableRequestIsAnsweredWithAnErrorAndLeavesTheModelAsItWas() async throws {
        let spec = InProcess.configuration().model
        let runtime = try InProcess.runtime("mnist-0", domain: .mnist, model: spec)
        let before = InProcess.bytes(runtime.learner.model.snapshot())
        let config = InProcess.configuration().training.proto

        // Tensors of another model: every name right, one shape wrong.
        var tensors = try spec.build().wireTensors { _ in true }
        tensors[0] = WireTensor(name: tensors[0].name, shape: [1, tensors[0].shape.reduce(1, *)], floats: try tensors[0].floats())
        let mismatch = try await exchange(runtime, Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload(tensors); $0.config = config })))
        guard case .error(let e)? = mismatch.answer?.body else { return XCTFail("no Error for a request of another model: \(String(describing: mismatch.answer))") }
        XCTAssertTrue(e.message.contains("cannot use the training request of round 1") && e.message.contains(tensors[0].name), e.message)
        XCTAssertEqual(mismatch.outcome, .disconnected)
        XCTAssertEqual(InProcess.bytes(runtime.learner.model.snapshot()), before, "a refused request changed the client's model")

        // Undecodable tensor bytes (3 bytes for a 2×2 float tensor): refused by the client's
        // transport before the runtime sees it, with the same kind of answer.
        var broken = Fedkit_V1_TensorSet()
        broken.tensors = [.with { $0.name = "conv1.weight"; $0.shape = [2, 2]; $0.dtype = .float32; $0.data = Foundation.Data([1, 2, 3]) }]
        let undecodable = try await exchange(runtime, Envelope(.evaluateRequest(.with { $0.round = 2; $0.parameters = .with { $0.content = .inline(broken) } })))
        guard case .error(let e2)? = undecodable.answer?.body else { return XCTFail("no Error for undecodable tensors") }
        XCTAssertTrue(e2.message.contains("conv1.weight") && e2.message.contains("needs 16 bytes but carries 3"), e2.message)
        XCTAssertEqual(undecodable.outcome, .disconnected)
        XCTAssertEqual(InProcess.bytes(runtime.learner.model.snapshot()), before)

        // The same client serves a proper request in its next session.
        let good = try spec.build().wireTensors { _ in true }
        let fine = try await exchange(runtime, Envelope(.evaluateRequest(.with { $0.round = 3; $0.parameters = Fedkit_V1_Payload(good) })))
        guard case .evaluateResult(let r)? = fine.answer?.body else { return XCTFail("no evaluation after the refused requests: \(String(describing: fine.answer))") }
        XCTAssertEqual(r.round, 3)
        XCTAssertEqual(fine.outcome, .finished(reason: "done"))
    }
}
