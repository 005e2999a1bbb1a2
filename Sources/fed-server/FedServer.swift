import FedKitCLI

/// `fed-server`: the coordinator daemon; its options and work are `ServerCommand` (FedKitCLI).
@main
enum FedServer {
    static func main() async { await ServerCommand.main(nil) }
}
