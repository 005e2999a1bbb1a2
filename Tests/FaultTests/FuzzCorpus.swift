import Foundation
import Tensor
import FuzzCorpusStore
import NN
import Wire
@testable import Federated

/// The generator of the committed fuzz corpus's `fit-results/` and `client-requests/` files (files and time budget:
/// `FuzzCorpusStore`).
///
/// Each file is one serialized `Envelope` (no frame header). Its name states its expected
/// verdict un-mutated: `accepted-…` (folded into the average), `answered-…` (the client
/// trains or evaluates and answers), `refused-<reason>-…` (refused whole, for `reason`, see
/// `refusals`), `undecodable-…` (not an `Envelope`).
enum FuzzCorpus {
    /// What a `refused-<reason>-…` file's refusal must say.
    static let refusals: [String: String] = [
        "examples": "training examples; allowed",
        "nonfinite": "contains NaN or infinite values",
        "shape": "has shape",
        "duplicate": "sent twice",
        "missing": "(missing",
        "unexpected": "unexpected tensor",
        "size": "bytes but carries",
        "chunked": "was not reassembled",
        "config": "training config out of range",
    ]

    /// The expected verdict of a corpus file: its first word, and for a refusal the text it must contain.
    static func verdict(_ name: String) -> (word: String, reason: String?) {
        let parts = name.dropLast(".bin".count).split(separator: "-").map(String.init)
        guard parts[0] == "refused" else { return (parts[0], nil) }
        return ("refused", refusals[parts[1]])
    }

    // MARK: Generation

    /// The tiny model both corpora are made for (FedBN: its BatchNorm tensors stay local).
    static let spec = ModelSpec.digitCNN(norm: .batch, widths: [2, 2, 2, 2, 2], seed: 5)
    static let round: UInt64 = 3
    /// Training examples the fuzzed client declared in its Hello.
    static let declaredExamples = 40

    static func sharedTensors() throws -> [WireTensor] {
        try spec.build().wireTensors { !$0.isBatchNorm }
    }

    /// `parameters` with the tensors of `edit` applied to their protobuf form.
    static func payload(_ edit: (inout [Fedkit_V1_Tensor]) -> Void) throws -> Fedkit_V1_Payload {
        var p = Fedkit_V1_Payload(try sharedTensors())
        edit(&p.inline.tensors)
        return p
    }

    /// Sets the first Float32 of the first tensor to `value`.
    static func poison(_ value: Float) -> (inout [Fedkit_V1_Tensor]) -> Void {
        { t in withUnsafeBytes(of: value.bitPattern.littleEndian) { t[0].data.replaceSubrange(0..<4, with: $0) } }
    }

    static var edits: [(String, (inout [Fedkit_V1_Tensor]) -> Void)] { [
        ("nonfinite-nan", poison(.nan)),
        ("nonfinite-minus-infinity", poison(-.infinity)),
        ("shape-reversed", { t in t[0].shape.reverse() }),
        ("duplicate-tensor", { t in t.append(t[0]) }),
        ("missing-last-tensor", { t in t.removeLast() }),
        ("unexpected-tensor", { t in t.append(.with { $0.name = "fc9.weight"; $0.shape = [1]; $0.dtype = t[0].dtype; $0.data = Data(count: 4) }) }),
        ("size-data-4-bytes-short", { t in t[0].data.removeLast(4) }),
    ] }

    static func serialized(_ body: Envelope.OneOf_Body) throws -> [UInt8] { try Envelope(body).serializedBytes() }

    /// The `fit-results/` files: what a client that declared 40 examples might send for round 3.
    static func fitResults() throws -> [(name: String, bytes: [UInt8])] {
        func result(examples: UInt64 = 40, _ parameters: Fedkit_V1_Payload) -> Fedkit_V1_FitResult {
            .with { $0.round = round; $0.numExamples = examples; $0.parameters = parameters; $0.trainLoss = 1.5; $0.trainAccuracy = 0.25 }
        }
        let valid = Fedkit_V1_Payload(try sharedTensors())
        var files: [(String, [UInt8])] = [
            ("accepted-tiny-model.bin", try serialized(.fitResult(result(valid)))),
            ("accepted-one-example.bin", try serialized(.fitResult(result(examples: 1, valid)))),
            ("refused-examples-zero.bin", try serialized(.fitResult(result(examples: 0, valid)))),
            ("refused-examples-41-of-40-declared.bin", try serialized(.fitResult(result(examples: 41, valid)))),
            ("refused-examples-billion.bin", try serialized(.fitResult(result(examples: 1_000_000_000, valid)))),
            ("refused-examples-minus-one.bin", try serialized(.fitResult(result(examples: UInt64.max, valid)))),
            ("refused-chunked-reference-never-sent.bin", try serialized(.fitResult(result(.with {
                $0.chunked = .with { $0.transferID = 9; $0.chunkCount = 2; $0.totalBytes = 100 }
            })))),
        ]
        for (name, edit) in edits {
            files.append(("refused-\(name).bin", try serialized(.fitResult(result(try payload(edit))))))
        }
        let whole = try serialized(.fitResult(result(valid)))
        files.append(("undecodable-truncated-in-tensor-data.bin", Array(whole.prefix(whole.count / 2))))
        return files
    }

    /// The `client-requests/` files: what a server might send a client of the tiny model.
    static func clientRequests() throws -> [(name: String, bytes: [UInt8])] {
        var settings = TrainingSettings()
        settings.batchSize = 4
        settings.learningRate = 0.05
        func fit(_ parameters: Fedkit_V1_Payload, config: Fedkit_V1_TrainingConfig = settings.proto) -> Envelope.OneOf_Body {
            .fitRequest(.with { $0.round = round; $0.parameters = parameters; $0.config = config })
        }
        func evaluate(_ parameters: Fedkit_V1_Payload) -> Envelope.OneOf_Body {
            .evaluateRequest(.with { $0.round = round; $0.parameters = parameters })
        }
        let valid = Fedkit_V1_Payload(try sharedTensors())
        var zeroEpochs = settings.proto
        zeroEpochs.epochs = 0
        var nanRate = settings.proto
        nanRate.learningRate = .nan
        var divergent = settings.proto
        divergent.learningRate = 1e30
        var files: [(String, [UInt8])] = [
            ("answered-fit-request.bin", try serialized(fit(valid))),
            // Found by the fuzz loop: a diverged training left NaN running statistics in the
            // client's model, so its next evaluation threw and dropped the connection.
            ("answered-error-diverging-learning-rate-fit-request.bin", try serialized(fit(valid, config: divergent))),
            ("answered-evaluate-request.bin", try serialized(evaluate(valid))),
            ("refused-config-zero-epochs.bin", try serialized(fit(valid, config: zeroEpochs))),
            ("refused-config-nan-learning-rate.bin", try serialized(fit(valid, config: nanRate))),
        ]
        for (name, edit) in edits where !name.hasPrefix("missing") {  // a request may carry a subset
            files.append(("refused-\(name)-fit-request.bin", try serialized(fit(try payload(edit)))))
            files.append(("refused-\(name)-evaluate-request.bin", try serialized(evaluate(try payload(edit)))))
        }
        let whole = try serialized(fit(valid))
        files.append(("undecodable-truncated-fit-request.bin", Array(whole.prefix(whole.count / 2))))
        return files
    }
}

/// One to four random edits of serialized bytes: bit flips, byte overwrites with boundary
/// values, insertions, deletions, truncation, NaN/Inf patterns, or a copied span.
enum Mutator {
    static func mutate(_ input: [UInt8], _ g: inout SplitMix64) -> [UInt8] {
        var b = input
        for _ in 0..<(1 + Int(g.next() % 4)) where !b.isEmpty {
            let i = Int(g.next() % UInt64(b.count))
            switch g.next() % 7 {
            case 0: b[i] ^= UInt8(1 << (g.next() % 8))
            case 1: b[i] = [0x00, 0xFF, 0x7F, 0x80, 0xC0, 0x01][Int(g.next() % 6)]
            case 2: b.insert(UInt8(truncatingIfNeeded: g.next()), at: i)
            case 3: b.remove(at: i)
            case 4: b = Array(b.prefix(i))
            case 5:
                // NaN or Inf into the middle of tensor data (Float32 little-endian).
                let pattern: [UInt8] = g.next() % 2 == 0 ? [0x00, 0x00, 0xC0, 0x7F] : [0x00, 0x00, 0x80, 0xFF]
                for k in 0..<4 where i + k < b.count { b[i + k] = pattern[k] }
            default:
                let j = Int(g.next() % UInt64(b.count)), n = min(16, b.count - max(i, j))
                if n > 0 { b.replaceSubrange(i..<(i + n), with: b[j..<(j + n)]) }
            }
        }
        return b
    }
}
