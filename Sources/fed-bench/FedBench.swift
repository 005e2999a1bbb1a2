import ArgumentParser

/// `fed-bench`: measures FedKit's engine, wire and data paths. Benchmarks, not tests:
/// every figure in README comes from one of these subcommands.
@main
struct FedBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fed-bench",
        abstract: "Measure FedKit's speed and memory.",
        subcommands: [
            TrainBench.self,
            AggregateBench.self,
            DataBench.self,
            WireBench.self,
            ServerMemoryBench.self,
        ]
    )
}
