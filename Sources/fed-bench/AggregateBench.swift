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
    @Option(help: "How the updates reach the fold: whole (each update complete in memory, as when received whole or clipped), or streamed (in chunks, as the coordinator receives them by default, each logged to take it back if it fails).")
    var arrival: Arrival = .whole
    @Option(help: "Streamed updates arriving at once, their chunks alternating (0: all of them; 1: one after another).")
    var atOnce = 0
    @Option(help: "Bytes per chunk of a streamed update (the daemons' default).") var chunkSize = PayloadChunker.defaultChunkSize
    @Option(help: "Where streamed updates' undo logs go (fed-server: its state directory, else the temp directory).")
    var undoDirectory = NSTemporaryDirectory()
    @Flag(help: "Print one JSON object per line.") var json = false

    enum Arrival: String, ExpressibleByArgument, CaseIterable { case whole, streamed }

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
        if arrival != .whole && maxUpdateNorm != nil { throw ValidationError("--max-update-norm needs --arrival whole: clipped updates are received whole") }
        guard atOnce >= 0 else { throw ValidationError("--at-once (\(atOnce)) must be 0 (all) or more") }
        guard chunkSize > 0 else { throw ValidationError("--chunk-size (\(chunkSize)) must be positive") }
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
            switch arrival {
            case .whole:
                for (i, u) in updates.enumerated() { try avg.add(u, weight: Double(100 + i), client: "c\(i)", round: 1) }
            case .streamed:
                try stream(updates, into: avg)
            }
            _ = try avg.writeAverage(into: model, releasingSums: !keepSums)
            bestAggregate = min(bestAggregate, now() - t)
        }
        let mb = Double(bytes) / 1e6
        if json {
            print(#"{"bench":"aggregate","arrival":"\#(arrival.rawValue)","at_once":\#(atOnce),"precision":"\#(precision.rawValue)","sums_given_back":\#(!keepSums),"max_update_norm":\#(maxUpdateNorm.map { String($0) } ?? "null"),"clients":\#(clients),"mb":\#(round2(mb)),"read_ms":\#(round2(bestRead * 1000)),"aggregate_ms":\#(round2(bestAggregate * 1000)),"ratio":\#(round2(bestAggregate / bestRead))}"#)
        } else {
            print("\(arrival.rawValue)\(arrival == .streamed ? " (\(atOnce == 0 ? "all" : String(atOnce)) at once)" : ""), \(precision.rawValue) sums\(keepSums ? " (kept)" : " (given back)")\(maxUpdateNorm.map { ", clipped at \($0)" } ?? ""), " + String(format: "%d updates, %.0f MB: one read %.1f ms (%.1f GB/s); validate + fold + average %.1f ms; ratio %.2f (checksum %g)",
                         clients, mb, bestRead * 1000, mb / 1000 / bestRead, bestAggregate * 1000, bestAggregate / bestRead, checksum))
        }
    }

    /// Feeds the updates to the fold as `TensorStreamEvent`s, `chunkSize` bytes of tensor data
    /// at a time, the way `PayloadStream` hands a received update on: `atOnce` updates arrive
    /// together, their chunks alternating, and the next one starts as one finishes.
    func stream(_ updates: [[WireTensor]], into avg: WeightedAverage) throws {
        var streams: [WeightedAverage.UpdateStream?] = Array(repeating: nil, count: updates.count)
        // Where each update is: tensor, and bytes of it sent.
        var cursor = Array(repeating: (tensor: 0, offset: 0), count: updates.count)
        func sendChunk(_ k: Int) throws -> Bool {
            if streams[k] == nil {
                streams[k] = try avg.beginStream(weight: Double(100 + k), client: "c\(k)", round: 1, undoDirectory: undoDirectory)
            }
            let u = updates[k], s = streams[k]!
            var budget = chunkSize
            while budget > 0, cursor[k].tensor < u.count {
                let t = u[cursor[k].tensor]
                if cursor[k].offset == 0 {
                    try s.take(.begin(name: t.name, shape: t.shape.map(Int64.init), dtype: t.dtype, byteCount: t.bytes.count))
                }
                let n = min(budget, t.bytes.count - cursor[k].offset)
                if n > 0 {
                    try t.bytes.withUnsafeBytes { raw in
                        try s.take(.data(UnsafeRawBufferPointer(rebasing: raw[cursor[k].offset..<cursor[k].offset + n])))
                    }
                }
                cursor[k].offset += n
                budget -= n
                if cursor[k].offset == t.bytes.count {
                    try s.take(.end)
                    cursor[k] = (cursor[k].tensor + 1, 0)
                }
            }
            if cursor[k].tensor == u.count { try s.commit(); return false }
            return true
        }
        let window = atOnce == 0 ? updates.count : atOnce
        var waiting = Array(updates.indices.reversed())
        var open: [Int] = []
        while !open.isEmpty || !waiting.isEmpty {
            while open.count < window, let k = waiting.popLast() { open.append(k) }
            open = try open.filter { try sendChunk($0) }
        }
    }
}
