import ArgumentParser
import FedKitCLI
import Foundation
import NN
import Tensor


/// `fed-bench train`: training throughput of one model on random data, single process.
struct TrainBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training samples/s, ms per step and peak RSS of a model on random data.")

    @Option(help: "Model architecture: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    var model: Architecture = .digitCNN
    @Option(help: "Normalization: batch, group, layer or none (FedWon: WSConv + AGC).")
    var norm: Norm = .none
    @Option(help: "Examples per step.")
    var batch = 32
    @Option(help: "OpenBLAS threads.")
    var threads = 1
    @Option(help: "Seconds to measure, after the warm-up steps.")
    var seconds = 5.0
    @Option(help: "Warm-up steps before measuring.")
    var warmup = 3
    @Option(help: "AGC λ for --norm none (the final classifier is never clipped).")
    var clip: Float = 0.1
    @Flag(help: "Print one JSON object per line instead of text.")
    var json = false
    @Flag(help: "Also print the time each top-level layer spends in forward and backward.")
    var profile = false

    func validate() throws {
        guard batch >= 1 else { throw ValidationError("--batch (\(batch)) must be at least 1") }
        guard threads >= 1 else { throw ValidationError("--threads (\(threads)) must be at least 1") }
        guard seconds > 0 else { throw ValidationError("--seconds (\(seconds)) must be positive") }
    }

    func run() throws {
        BLAS.setThreads(threads)
        let spec = ModelSpec(architecture: model, norm: norm, classes: 10)
        let net = try spec.build()
        let trainer = Trainer(model: net, optimizer: SGD(learningRate: 0.01),
                              clipping: norm == .none ? AdaptiveGradientClipping(clipping: clip, excluded: [net.classifierName]) : nil)
        var rng = SeededGenerator(seed: 0)
        let input = Tensor(zeros: [batch] + net.inputShape)
        input.fillNormal(using: &rng)
        let labels = (0..<batch).map { _ in Int(rng.next() % 10) }
        for _ in 0..<max(warmup, 1) { try trainer.step(input: input, labels: labels) }
        let rssAfterWarmup = ProcessMemory.currentRSS()
        var steps = 0
        let start = DispatchTime.now().uptimeNanoseconds
        var elapsed = 0.0
        repeat {
            try trainer.step(input: input, labels: labels)
            steps += 1
            elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        } while elapsed < seconds
        let rssEnd = ProcessMemory.currentRSS()
        if profile { try profileLayers(net, trainer: trainer, input: input, labels: labels) }
        let samplesPerSecond = Double(steps * batch) / elapsed
        let msPerStep = elapsed * 1000 / Double(steps)
        let peak = ProcessMemory.peakRSS()
        if json {
            print(#"{"bench":"train","model":"\#(model.rawValue)","norm":"\#(norm.rawValue)","batch":\#(batch),"threads":\#(threads),"blas_core":"\#(BLAS.coreName)","# +
                  #""steps":\#(steps),"samples_per_s":\#(round2(samplesPerSecond)),"ms_per_step":\#(round2(msPerStep)),"# +
                  #""rss_after_warmup_mb":\#(round2(rssAfterWarmup)),"rss_end_mb":\#(round2(rssEnd)),"peak_rss_mb":\#(round2(peak)),"# +
                  #""parameters":\#(net.parameterCount)}"#)
        } else {
            print("\(model.rawValue) norm=\(norm.rawValue) batch=\(batch) threads=\(threads) OpenBLAS kernels=\(BLAS.coreName): \(steps) steps in \(String(format: "%.2f", elapsed)) s")
            print(String(format: "  %.1f samples/s, %.2f ms/step", samplesPerSecond, msPerStep))
            print(String(format: "  RSS after warm-up %.1f MB, at end %.1f MB, peak %.1f MB (%d parameters)", rssAfterWarmup, rssEnd, peak, net.parameterCount))
        }
    }
}

extension TrainBench {
    /// Times forward and backward of each top-level layer, and the update, over a few steps.
    func profileLayers(_ net: Model, trainer: Trainer, input: Tensor, labels: [Int]) throws {
        let children = net.network.children
        var fwd = Array(repeating: 0.0, count: children.count), bwd = fwd
        var update = 0.0, zero = 0.0
        let steps = 5
        var loss = CrossEntropyLoss()
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e6 }
        for _ in 0..<steps {
            var t = now()
            net.zeroGradients()
            zero += now() - t
            var x = input
            for (i, c) in children.enumerated() { t = now(); x = try c.layer.forward(x, training: true); fwd[i] += now() - t }
            _ = try loss.forward(logits: x, labels: labels)
            var d = loss.backward()
            for (i, c) in children.enumerated().reversed() { t = now(); d = c.layer.backward(d); bwd[i] += now() - t }
            t = now()
            if let clip = trainer.clipping { clip.clip(net.entries) }
            trainer.optimizer.step(net.entries)
            update += now() - t
        }
        for (i, c) in children.enumerated() {
            print(String(format: "  %-14@ forward %7.2f ms  backward %7.2f ms", (c.name ?? "\(type(of: c.layer))") as NSString, fwd[i] / Double(steps), bwd[i] / Double(steps)))
        }
        print(String(format: "  zero grads %.2f ms, clip + SGD update %.2f ms", zero / Double(steps), update / Double(steps)))
    }
}

func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }

