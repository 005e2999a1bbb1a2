import ArgumentParser
import CBLAS
import FedKitCLI
import Federated
import Foundation
import NN
import Tensor
import Wire

/// `fed-bench aggregate`: the server's streaming FedAvg against a plain read of the same bytes.
struct AggregateBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregate",
        abstract: "Time to validate and fold K full digit-model updates into the streaming average and write it into the model, against one read of them.")

    @Option(help: "Number of client updates.") var clients = 5
    @Option(help: "Repetitions (the best is reported).") var repeats = 5
    @Option(help: "Running sums: float64 (reproducible whatever the arrival order) or float32.")
    var precision: AggregationPrecision = .float64
    @Option(help: "Norm clipping bound (fed-server --max-update-norm), measured from the model; default: none.") var maxUpdateNorm: Double?
    @Flag(help: "Keep the sums' memory from round to round; by default it is given back as the average is written, as the coordinator does, and faulted in again by the next round's folds.")
    var keepSums = false
    @Flag(help: "Print one JSON object per line.") var json = false

    func run() throws {
        BLAS.setThreads(1)
        let model = try ModelSpec.digitCNN(norm: .batch).build()
        var rng = SeededGenerator(seed: 1)
        for e in model.entries { e.value.fillNormal(std: 0.01, using: &rng) }
        let template = model.entries.map { ($0.name, $0.value.shape) }
        let updates = (0..<clients).map { _ in model.wireTensors { _ in true } }
        let bytes = updates.reduce(0) { $0 + $1.reduce(0) { $0 + $1.bytes.count } }
        func now() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }
        var bestRead = Double.infinity, bestAggregate = Double.infinity
        var checksum: Float = 0
        if let b = maxUpdateNorm, !(b.isFinite && b > 0) { throw ValidationError("--max-update-norm (\(b)) must be a positive number") }
        let avg = WeightedAverage(template: template, precision: precision,
                                  clipping: maxUpdateNorm.map { UpdateClipping(bound: $0, reference: model) })
        for _ in 0..<repeats {
            var t = now()
            for u in updates {
                for w in u {
                    checksum += w.bytes.withUnsafeBytes { raw in
                        let p = raw.bindMemory(to: Float.self)
                        return Float(Reductions.sum(p.baseAddress!, count: p.count))
                    }
                }
            }
            bestRead = min(bestRead, now() - t)
            t = now()
            avg.reset()
            for (i, u) in updates.enumerated() { try avg.add(u, weight: Double(100 + i), client: "c\(i)", round: 1) }
            _ = try avg.writeAverage(into: model, releasingSums: !keepSums)
            bestAggregate = min(bestAggregate, now() - t)
        }
        let mb = Double(bytes) / 1e6
        if json {
            print(#"{"bench":"aggregate","precision":"\#(precision.rawValue)","sums_given_back":\#(!keepSums),"max_update_norm":\#(maxUpdateNorm.map { String($0) } ?? "null"),"clients":\#(clients),"mb":\#(round2(mb)),"read_ms":\#(round2(bestRead * 1000)),"aggregate_ms":\#(round2(bestAggregate * 1000)),"ratio":\#(round2(bestAggregate / bestRead))}"#)
        } else {
            print("\(precision.rawValue) sums\(keepSums ? " (kept)" : " (given back)")\(maxUpdateNorm.map { ", clipped at \($0)" } ?? ""), " + String(format: "%d updates, %.0f MB: one read %.1f ms (%.1f GB/s); validate + fold + average %.1f ms; ratio %.2f (checksum %g)",
                         clients, mb, bestRead * 1000, mb / 1000 / bestRead, bestAggregate * 1000, bestAggregate / bestRead, checksum))
        }
    }
}
