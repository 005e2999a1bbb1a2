import Foundation
import Tensor
import FuzzCorpusStore
import NN
import SwiftProtobuf
import Wire
import XCTest
@testable import Federated

/// Seeded random-mutation loops, run for a fixed time (`FEDKIT_FUZZ_SECONDS`, default 10 s
/// each) and seeded from every file of the committed corpus `Tests/FuzzCorpus`, over the two
/// message handlers a peer's bytes reach once framed:
///
/// * the coordinator's handling of a client's update (`Coordinator.fold`: the example-count
///   bound, tensor decoding and whole-update validation, exactly as `receive` chains them).
///   Invariants: nothing crashes; a refused update leaves the running sum untouched; an
///   accepted one has every expected tensor once, the right shapes and only finite values.
/// * the client's handling of the server's `FitRequest` and `EvaluateRequest`
///   (`ClientRuntime.fit` / `evaluate`). Invariants: nothing crashes; a refused request
///   leaves the client's model untouched (bit for bit); an answered one answers the round it
///   was asked, with exactly the tensors it was sent.
final class UpdateFuzzTests: XCTestCase {
    /// Rewrites `Tests/FuzzCorpus/fit-results` and `client-requests` when `FEDKIT_WRITE_CORPUS=1`.
    func testWriteUpdateCorpus() throws {
        try XCTSkipUnless(FuzzCorpusStore.rewriting, "set FEDKIT_WRITE_CORPUS=1 to rewrite Tests/FuzzCorpus/fit-results and client-requests")
        try FuzzCorpusStore.write(try FuzzCorpus.fitResults(), to: "fit-results")
        try FuzzCorpusStore.write(try FuzzCorpus.clientRequests(), to: "client-requests")
    }

    // MARK: The coordinator's side

    private func template() throws -> [(name: String, shape: [Int])] {
        try FuzzCorpus.spec.build().entries.filter { !$0.isBatchNorm }.map { ($0.name, $0.value.shape) }
    }

    /// Runs `Coordinator.fold` as `receive` does for a client that declared 40 examples.
    private func fold(_ bytes: [UInt8], template: [(name: String, shape: [Int])]) -> (Coordinator.Fold, WeightedAverage)? {
        guard let envelope = try? Envelope(serializedBytes: bytes), case .fitResult(let r) = envelope.body else { return nil }
        let aggregator = WeightedAverage(template: template)
        return (Coordinator.fold(r, from: "fuzz", declaredExamples: FuzzCorpus.declaredExamples, cap: 1_000_000, into: aggregator), aggregator)
    }

    func testEveryCorpusFitResultGivesItsVerdict() throws {
        let template = try template()
        let files = try FuzzCorpusStore.files(in: "fit-results")
        XCTAssertGreaterThan(files.count, 10, "the fit-results corpus is missing files")
        for (name, bytes) in files {
            let (word, reason) = FuzzCorpus.verdict(name)
            let outcome = fold(bytes, template: template)
            switch (word, outcome?.0) {
            case ("accepted", .accepted?): XCTAssertEqual(outcome!.1.contributors, ["fuzz"], name)
            case ("refused", .refused(let why)?):
                XCTAssertNotNil(reason, "\(name): unknown refusal reason")
                XCTAssertTrue(why.contains(reason ?? "?"), "\(name): refused for \"\(why)\", expected \"\(reason ?? "?")\"")
                XCTAssertEqual(outcome!.1.totalWeight, 0, name)
            case ("undecodable", nil): break
            default: XCTFail("\(name): got \(String(describing: outcome?.0))")
            }
        }
    }

    func testMutatedFitResultsAreRefusedWholeOrAreValid() throws {
        let template = try template()
        let shapes = Dictionary(uniqueKeysWithValues: template)
        let seeds = try FuzzCorpusStore.files(in: "fit-results").map(\.bytes)
        var generator = SplitMix64(seed: 2024)
        var iterations = 0, decoded = 0, accepted = 0, refused = 0
        let deadline = Date().addingTimeInterval(FuzzCorpusStore.seconds)
        while Date() < deadline || iterations < 1000 {
            iterations += 1
            let bytes = Mutator.mutate(seeds[Int(generator.next() % UInt64(seeds.count))], &generator)
            guard let (outcome, aggregator) = fold(bytes, template: template) else { continue }
            decoded += 1
            guard case .accepted = outcome else {
                refused += 1
                XCTAssertEqual(aggregator.totalWeight, 0, "a refused update changed the sum")
                XCTAssertEqual(aggregator.contributors, [])
                continue
            }
            accepted += 1
            guard case .fitResult(let r) = try Envelope(serializedBytes: bytes).body else { continue }
            let tensors = try r.parameters.wireTensors()
            XCTAssertEqual(aggregator.contributors, ["fuzz"])
            XCTAssertTrue((1...FuzzCorpus.declaredExamples).contains(Int(r.numExamples)), "accepted \(r.numExamples) examples")
            XCTAssertEqual(Set(tensors.map(\.name)), Set(shapes.keys))
            XCTAssertEqual(tensors.count, shapes.count)
            for t in tensors {
                XCTAssertEqual(t.shape, shapes[t.name])
                XCTAssertTrue(try t.floats().allSatisfy(\.isFinite), "accepted non-finite values in \(t.name)")
            }
        }
        XCTAssertGreaterThan(decoded, iterations / 10, "the mutations rarely decode; the loop tests little")
        XCTAssertGreaterThan(refused, 0)
        XCTAssertGreaterThan(accepted, 0)
        print("update fuzz: \(iterations) mutated FitResults in \(FuzzCorpusStore.seconds) s from \(seeds.count) corpus files, \(decoded) decoded, \(refused) refused, \(accepted) accepted (all valid)")
    }

    // MARK: The client's side

    private func client() throws -> ClientRuntime {
        try InProcess.runtime("mnist-0", domain: .mnist, train: 8, model: FuzzCorpus.spec)
    }

    /// What the client did with a request: answered with a message of `kind`, refused it, or could not decode it.
    private enum Answer: Equatable { case answered(kind: String), refused(String), undecodable }

    /// Hands a request to the client as `serve` does, checking the invariants.
    private func handle(_ bytes: [UInt8], by runtime: ClientRuntime) -> Answer {
        guard let envelope = try? Envelope(serializedBytes: bytes) else { return .undecodable }
        let before = ClientRuntime.digest(runtime.learner.model.snapshot())
        let sent: Fedkit_V1_Payload, round: UInt64
        let answer: Envelope
        do {
            switch envelope.body {
            case .fitRequest(let r): (sent, round) = (r.parameters, r.round); answer = try runtime.fit(r)
            case .evaluateRequest(let r): (sent, round) = (r.parameters, r.round); answer = try runtime.evaluate(r)
            default: return .undecodable
            }
        } catch {
            XCTAssertTrue(error is FederatedError || error is WireError, "unnamed error \(error)")
            XCTAssertEqual(ClientRuntime.digest(runtime.learner.model.snapshot()), before, "a refused request changed the client's model: \(error)")
            return .refused("\(error)")
        }
        switch answer.body {
        case .fitResult(let r):
            XCTAssertEqual(r.round, round)
            let names = (try? sent.wireTensors().map(\.name)) ?? []
            XCTAssertEqual(try r.parameters.wireTensors().map(\.name).sorted(), names.sorted(), "the client must return exactly the tensors it was sent")
            XCTAssertEqual(r.numExamples, 8)
        case .evaluateResult(let r):
            XCTAssertEqual(r.round, round)
            XCTAssertTrue((0...1).contains(r.accuracy), "accuracy \(r.accuracy)")
        case .error(let e):
            // Local training (or evaluation) failed and said so; nothing of it was kept.
            XCTAssertTrue(e.message.contains("round \(round)"), e.message)
            if case .fitRequest = envelope.body {
                XCTAssertEqual(ClientRuntime.digest(runtime.learner.model.snapshot()), before, "a failed training left its steps in the model")
            }
        default:
            XCTFail("the client answered a request with \(answer.kind)")
        }
        return .answered(kind: answer.kind)
    }

    func testEveryCorpusClientRequestGivesItsVerdict() throws {
        let runtime = try client()
        let files = try FuzzCorpusStore.files(in: "client-requests")
        XCTAssertGreaterThan(files.count, 10, "the client-requests corpus is missing files")
        for (name, bytes) in files {
            let (word, reason) = FuzzCorpus.verdict(name)
            switch (word, handle(bytes, by: runtime)) {
            case ("answered", .answered(let kind)):
                XCTAssertEqual(kind == "error", name.hasPrefix("answered-error-"), "\(name): answered with \(kind)")
            case ("undecodable", .undecodable): break
            case ("refused", .refused(let why)):
                XCTAssertNotNil(reason, "\(name): unknown refusal reason")
                XCTAssertTrue(why.contains(reason ?? "?"), "\(name): refused for \"\(why)\", expected \"\(reason ?? "?")\"")
            case (_, let got): XCTFail("\(name): got \(got)")
            }
        }
    }

    func testMutatedRequestsAreRefusedWithTheModelUntouchedOrAnswered() throws {
        let runtime = try client()
        let seeds = try FuzzCorpusStore.files(in: "client-requests").map(\.bytes)
        var generator = SplitMix64(seed: 77)
        var iterations = 0, answered = 0, refused = 0, undecodable = 0
        let deadline = Date().addingTimeInterval(FuzzCorpusStore.seconds)
        while Date() < deadline || iterations < 200 {
            iterations += 1
            switch handle(Mutator.mutate(seeds[Int(generator.next() % UInt64(seeds.count))], &generator), by: runtime) {
            case .answered: answered += 1
            case .refused: refused += 1
            case .undecodable: undecodable += 1
            }
        }
        XCTAssertGreaterThan(answered + refused, iterations / 10, "the mutations rarely decode; the loop tests little")
        XCTAssertGreaterThan(answered, 0)
        XCTAssertGreaterThan(refused, 0)
        print("client request fuzz: \(iterations) mutated requests in \(FuzzCorpusStore.seconds) s from \(seeds.count) corpus files, \(answered) answered, \(refused) refused (model untouched), \(undecodable) not decodable")
    }
}
