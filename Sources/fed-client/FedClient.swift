import FedKitCLI

/// `fed-client`: the client daemon; its options and work are `ClientCommand` (FedKitCLI).
@main
enum FedClient {
    static func main() async { await ClientCommand.main(nil) }
}
