import Foundation
import XCTest

/// Runs a real federation across Linux network namespaces with `cluster/netns/launch.sh`:
/// `fed-server` in one namespace, two `fed-client`s in two others, joined by veth links
/// and a bridge, speaking mutual TLS over private addresses that exist only inside
/// those namespaces.
///
/// Needs root and iproute2's `ip netns`; anywhere else the test is skipped and says why.
/// It needs the `fed-server` and `fed-client` executables next to the test bundle
/// (`swift build --build-tests` builds them) or in `FEDKIT_BIN`.
final class NetnsFederationTests: XCTestCase {
    func testTwoRoundFederationAcrossThreeNamespaces() throws {
        let bin = try NetnsLauncher.requireNamespacesAndDaemons(for: "the multi-host federation test")

        let prefix = "fkt\(getpid() % 100_000)"
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-netns-\(prefix)-\(UUID().uuidString)").path
        defer {
            // Safety net: whatever happened, no namespace of this test survives it.
            _ = try? NetnsLauncher.run(["--clean", prefix], timeout: 30)
            try? FileManager.default.removeItem(atPath: out)
        }
        let run = try NetnsLauncher.run([
            "--clients", "2", "--domains", "mnist,usps", "--rounds", "2", "--strategy", "fedwon",
            "--prefix", prefix, "--port", "7443", "--bin", bin, "--out", out, "--timeout", "90",
            "--server-arg", "--connect-timeout", "--server-arg", "60", "--server-arg", "--round-timeout", "--server-arg", "60",
            "--server-arg", "--batch-size", "--server-arg", "16",
            "--client-arg", "--train-count", "--client-arg", "100", "--client-arg", "--test-count", "--client-arg", "50",
            "--", "--widths", "4,4,8,16,8",
        ], timeout: 110)

        XCTAssertFalse(run.timedOut, "the federation did not finish in time:\n\(run.output)")
        XCTAssertEqual(run.status, 0, "launch.sh failed:\n\(run.output)\n--- server.log ---\n\(NetnsLauncher.tail("\(out)/server.log"))")
        XCTAssertEqual(NetnsLauncher.namespaces(prefix: prefix), [], "namespaces left behind by launch.sh")

        // The clients really were on other hosts: the server saw their namespace addresses.
        let network = (try? String(contentsOfFile: "\(out)/network.txt", encoding: .utf8)) ?? ""
        XCTAssertTrue(network.contains("10.77.0.1/24") && network.contains("10.77.0.2/24") && network.contains("10.77.0.3/24"),
                      "unexpected addresses:\n\(network)")
        // Which port of the bridge cables which host (what a fault test disables to cut one off).
        for line in ["port p0 \(prefix)-s fed-server 10.77.0.1", "port p1 \(prefix)-c1 mnist-0 10.77.0.2", "port p2 \(prefix)-c2 usps-0 10.77.0.3"] {
            XCTAssertTrue(network.split(separator: "\n").contains { $0 == line }, "network.txt lacks \"\(line)\":\n\(network)")
        }

        let text = try String(contentsOfFile: "\(out)/server/metrics.jsonl", encoding: .utf8)
        let rounds = try text.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(rounds.count, 2, "metrics.jsonl should hold 2 rounds:\n\(text)")
        for (i, round) in rounds.enumerated() {
            XCTAssertEqual(round["round"] as? Int, i + 1)
            let evaluation = round["evaluation"] as? [[String: Any]] ?? []
            let evaluated = Set(evaluation.compactMap { $0["client"] as? String })
            XCTAssertEqual(evaluated, ["mnist-0", "usps-0"], "round \(i + 1) should evaluate both clients:\n\(text)")
            for e in evaluation {
                let accuracy = (e["accuracy"] as? Double) ?? -1
                XCTAssertTrue((0...1).contains(accuracy), "accuracy \(accuracy) out of [0, 1] in round \(i + 1)")
            }
            let fit = round["fit"] as? [[String: Any]] ?? []
            XCTAssertEqual(fit.count, 2, "round \(i + 1) should aggregate both clients' updates:\n\(text)")
        }
    }
}
