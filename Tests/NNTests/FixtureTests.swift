import XCTest
import Tensor
@testable import NN

/// Checks every layer, the loss, SGD, AGC and whole models against PyTorch.
///
/// Data-driven: every `*.json` in the fixture directory is run according to its
/// `kind` and `config`, so a new reference case is added by dropping in a file.
final class FixtureTests: XCTestCase {
    /// Kinds this suite knows how to run.
    static let kinds: Set<String> = [
        "conv2d", "wsconv2d", "batchnorm1d", "batchnorm2d", "groupnorm", "layernorm", "linear",
        "relu", "maxpool2d", "adaptiveavgpool2d", "cross_entropy", "sgd", "agc", "digit_cnn",
    ]

    func testEveryFixtureMatchesPyTorch() throws {
        let fixtures = try Fixture.all()
        XCTAssertFalse(fixtures.isEmpty, "no fixtures found in \(Fixture.directory.path)")
        for f in fixtures {
            guard Self.kinds.contains(f.kind) else {
                XCTFail("\(f.file): unknown fixture kind \(f.kind)")
                continue
            }
            try run(f)
        }
    }

    /// The bundled fixtures cover every kind (so a renamed kind cannot silently skip its checks).
    func testBundledFixturesCoverEveryKind() throws {
        guard ProcessInfo.processInfo.environment["FEDKIT_FIXTURES"] == nil else { return }
        let seen = Set(try Fixture.all().map(\.kind))
        XCTAssertEqual(seen, Self.kinds)
    }

    func run(_ f: Fixture) throws {
        switch f.kind {
        case "conv2d":
            let layer = Conv2d(inputChannels: f.int("in_channels"), outputChannels: f.int("out_channels"),
                               kernelSize: f.int("kernel_size"), stride: f.int("stride"), padding: f.int("padding"), bias: f.bool("bias"))
            layer.weight.assign(from: f.tensor("weight"))
            if let b = layer.bias { b.assign(from: f.tensor("bias")) }
            try checkLayer(f, layer, params: [("weight", layer.dWeight)] + (layer.dBias.map { [("bias", $0)] } ?? []))
        case "wsconv2d":
            let layer = WSConv2d(inputChannels: f.int("in_channels"), outputChannels: f.int("out_channels"),
                                 kernelSize: f.int("kernel_size"), stride: f.int("stride"), padding: f.int("padding"),
                                 bias: f.bool("bias"), gamma: f.float("gamma"), eps: f.float("eps"))
            layer.weight.assign(from: f.tensor("weight"))
            layer.gain.assign(from: f.tensor("gain"))
            if let b = layer.bias { b.assign(from: f.tensor("bias")) }
            try checkLayer(f, layer, params: [("weight", layer.dWeight), ("gain", layer.dGain)] + (layer.dBias.map { [("bias", $0)] } ?? []))
        case "batchnorm1d", "batchnorm2d":
            let n = f.int("num_features")
            let layer: BatchNorm = f.kind == "batchnorm1d"
                ? BatchNorm1d(features: n, eps: f.float("eps"), momentum: f.float("momentum"))
                : BatchNorm2d(features: n, eps: f.float("eps"), momentum: f.float("momentum"))
            layer.weight.assign(from: f.tensor("weight")); layer.bias.assign(from: f.tensor("bias"))
            layer.runningMean.assign(from: f.tensor("running_mean_before"))
            layer.runningVar.assign(from: f.tensor("running_var_before"))
            try checkLayer(f, layer, training: f.bool("training"), params: [("weight", layer.dWeight), ("bias", layer.dBias)])
            assertClose(layer.runningMean, f.tensor("running_mean_after"), "\(f.file) running_mean")
            assertClose(layer.runningVar, f.tensor("running_var_after"), "\(f.file) running_var")
        case "groupnorm":
            let layer = GroupNorm(groups: f.int("num_groups"), channels: f.int("num_channels"), eps: f.float("eps"))
            layer.weight.assign(from: f.tensor("weight")); layer.bias.assign(from: f.tensor("bias"))
            try checkLayer(f, layer, params: [("weight", layer.dWeight), ("bias", layer.dBias)])
        case "layernorm":
            let shape = (f.config["normalized_shape"] as! [Any]).map { ($0 as! NSNumber).intValue }
            let layer = LayerNorm(normalizedShape: shape, eps: f.float("eps"))
            layer.weight.assign(from: f.tensor("weight")); layer.bias.assign(from: f.tensor("bias"))
            try checkLayer(f, layer, params: [("weight", layer.dWeight), ("bias", layer.dBias)])
        case "linear":
            let layer = Linear(inputFeatures: f.int("in_features"), outputFeatures: f.int("out_features"), bias: f.bool("bias"))
            layer.weight.assign(from: f.tensor("weight"))
            if let b = layer.bias { b.assign(from: f.tensor("bias")) }
            try checkLayer(f, layer, params: [("weight", layer.dWeight)] + (layer.dBias.map { [("bias", $0)] } ?? []))
        case "relu":
            try checkLayer(f, ReLU(), params: [])
        case "maxpool2d":
            try checkLayer(f, MaxPool2d(kernelSize: f.int("kernel_size"), stride: f.int("stride")), params: [])
        case "adaptiveavgpool2d":
            try checkLayer(f, AdaptiveAvgPool2d(outputSize: f.int("output_size")), params: [])
        case "cross_entropy":
            var loss = CrossEntropyLoss()
            let value = try loss.forward(logits: f.tensor("logits"), labels: f.labels())
            assertClose(try Tensor(shape: [1], values: [value]), f.tensor("loss"), "\(f.file) loss")
            assertClose(loss.backward(), f.tensor("grad_logits"), "\(f.file) grad_logits")
        case "sgd":
            let sgd = SGD(learningRate: f.float("lr"), momentum: f.float("momentum"), weightDecay: f.float("weight_decay"))
            let w = f.tensor("param")
            sgd.step(name: "p", weight: w, gradient: f.tensor("grad1"))
            assertClose(w, f.tensor("after1"), "\(f.file) after1")
            sgd.step(name: "p", weight: w, gradient: f.tensor("grad2"))
            assertClose(w, f.tensor("after2"), "\(f.file) after2")
        case "agc":
            var agc = AdaptiveGradientClipping(clipping: f.float("clip"))
            agc.eps = f.float("eps")
            for unit in ["conv", "linear", "bias"] {
                let g = f.tensor("grad_\(unit)")
                agc.clip(weight: f.tensor("param_\(unit)"), gradient: g)
                assertClose(g, f.tensor("clipped_\(unit)"), "\(f.file) clipped_\(unit)", atol: 1e-6)
            }
        case "digit_cnn":
            try checkDigitCNN(f)
        default:
            XCTFail("\(f.file): unhandled kind \(f.kind)")
        }
    }

    /// forward(input) ≈ output; backward(grad_output) ≈ grad_input and every `grad_<param>`.
    func checkLayer(_ f: Fixture, _ layer: any Layer, training: Bool = true, params: [(String, Tensor)]) throws {
        let out = try layer.forward(f.tensor("input"), training: training)
        assertClose(out, f.tensor("output"), "\(f.file) output")
        let dIn = layer.backward(f.tensor("grad_output"))
        assertClose(dIn, f.tensor("grad_input"), "\(f.file) grad_input")
        for (name, grad) in params {
            assertClose(grad, f.tensor("grad_\(name)"), "\(f.file) grad_\(name)")
        }
    }

    /// The whole digit model: logits, loss, every gradient, three SGD steps, evaluation logits.
    func checkDigitCNN(_ f: Fixture) throws {
        let norm = Norm(rawValue: f.config["norm"] as! String)!
        let widths = (f.config["widths"] as! [Any]).map { ($0 as! NSNumber).intValue }
        let model = try ModelSpec.digitCNN(norm: norm, widths: widths, groups: f.int("groups")).build()
        func initialState() -> StateDictionary {
            var d = StateDictionary()
            for e in model.entries {
                d[e.name] = f.tensor((e.kind == .parameter ? "param." : "buffer.") + e.name)
            }
            return d
        }
        // Every fixture tensor has a model tensor of the same name (and vice versa, via requireAll).
        let fixtureParams = f.tensors.keys.filter { $0.hasPrefix("param.") || $0.hasPrefix("buffer.") }
        XCTAssertEqual(Set(fixtureParams), Set(model.entries.map { ($0.kind == .parameter ? "param." : "buffer.") + $0.name }), f.file)
        try model.load(initialState())

        let input = f.tensor("input"), labels = f.labels()
        var loss = CrossEntropyLoss()
        model.zeroGradients()
        let logits = try model.forward(input, training: true)
        assertClose(logits, f.tensor("logits"), "\(f.file) logits")
        let value = try loss.forward(logits: logits, labels: labels)
        assertClose(try Tensor(shape: [1], values: [value]), f.tensor("loss"), "\(f.file) loss")
        model.backward(loss.backward())
        for e in model.parameters {
            assertClose(e.gradient!, f.tensor("grad." + e.name), "\(f.file) grad.\(e.name)")
        }

        // Three steps of plain SGD from the initial state (AGC for norm none).
        try model.load(initialState())
        let clip = (f.config["agc_clip"] as? NSNumber)?.floatValue
        let skip = (f.config["agc_skip"] as? [String]) ?? []
        let trainer = Trainer(model: model, optimizer: SGD(learningRate: f.float("lr")),
                              clipping: clip.map { AdaptiveGradientClipping(clipping: $0, excluded: skip) })
        var losses: [Float] = []
        for _ in 0..<f.int("steps") { losses.append(try trainer.step(input: input, labels: labels).loss) }
        assertClose(try Tensor(shape: [losses.count], values: losses), f.tensor("losses_3_steps"), "\(f.file) losses_3_steps")
        for e in model.entries {
            let key = (e.kind == .parameter ? "after." : "after_buffer.") + e.name
            if f.has(key) { assertClose(e.value, f.tensor(key), "\(f.file) \(key)") }
            else if e.kind == .parameter { XCTFail("\(f.file): fixture lacks \(key)") }
        }
        if clip != nil { XCTAssertGreaterThan(trainer.clippedUnits, 0, "\(f.file): AGC never clipped") }
        let evalLogits = try model.forward(input, training: false)
        assertClose(evalLogits, f.tensor("eval_logits_after"), "\(f.file) eval_logits_after")
    }
}
