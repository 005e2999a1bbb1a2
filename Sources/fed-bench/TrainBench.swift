import ArgumentParser

struct TrainBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "Training throughput of a model on random data.")
    func run() async throws {}
}
