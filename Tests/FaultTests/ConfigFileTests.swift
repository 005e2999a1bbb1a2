import FedKitCLI
import Foundation
import XCTest

/// Configuration files: a key no daemon knows is refused, naming the file, the line and the
/// nearest known key, instead of being ignored and leaving its setting at the default.
final class ConfigFileTests: XCTestCase {
    func file(_ text: String) throws -> ConfigFile {
        let path = NSTemporaryDirectory() + "config-\(UUID().uuidString).toml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: path) }
        return try ConfigFile(path: path)
    }

    func testTheKeysAreBothDaemonsOptions() {
        let keys = ConfigFile.federationKeys
        for key in ["min-fit-clients", "rounds", "max-update-norm", "aggregation-precision",  // fed-server only
                    "server", "partition", "data", "cert-dir",                                // fed-client only
                    "strategy", "widths", "cert", "ca", "status-port", "log-format"] {         // both
            XCTAssertTrue(keys.contains(key), key)
        }
        XCTAssertFalse(keys.contains("help"))
        XCTAssertFalse(keys.contains("config"))
        XCTAssertTrue(ServerCommand.configurationKeys.contains("min-fit-clients"))
        XCTAssertFalse(ClientCommand.configurationKeys.contains("min-fit-clients"))
    }

    func testAMisspeltKeyIsRefusedWithTheNearestOne() throws {
        let config = try file("rounds = 3\n# a comment\n[server]\nmin_fit_clinets = 2\n")
        XCTAssertThrowsError(try config.requireKnownKeys()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasSuffix(".toml:4: unknown key `min-fit-clinets` (did you mean `min-fit-clients`?); keys are the long option names of fed-server --help and fed-client --help"), text)
        }
        let far = try file("rounds = 3\ncolour-scheme = \"dark\"\nzzz = 1\n")
        XCTAssertThrowsError(try far.requireKnownKeys()) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains(":2: unknown key `colour-scheme`;"), text)  // nothing near enough to suggest
            XCTAssertTrue(text.contains("also unknown: zzz"), text)
        }
        XCTAssertNoThrow(try file("[server]\nrounds = 3\nmin_fit_clients = 2\n[client]\npartition = \"0/2\"\n").requireKnownKeys())
        XCTAssertNoThrow(try ConfigFile().requireKnownKeys())
    }

    /// The configuration files shipped in cluster/ hold only keys the daemons know.
    func testTheShippedConfigurationFilesPass() throws {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        for name in ["cluster/systemd/server.toml", "cluster/systemd/client.toml"] {
            XCTAssertNoThrow(try ConfigFile(path: "\(repo)/\(name)").requireKnownKeys(), name)
        }
        // The Kubernetes ConfigMap embeds one file for both daemons, indented under `federation.toml: |`.
        let map = try String(contentsOfFile: "\(repo)/cluster/k8s/configmap.yaml", encoding: .utf8)
        let embedded = try XCTUnwrap(map.components(separatedBy: "federation.toml: |\n").last)
        let config = try file(embedded.split(separator: "\n", omittingEmptySubsequences: false).map { String($0.dropFirst(4)) }.joined(separator: "\n"))
        XCTAssertGreaterThan(config.values.count, 10)
        XCTAssertNoThrow(try config.requireKnownKeys())
    }
}
