import Foundation
import XCTest

/// Runs the container entry point (`cluster/k8s/entrypoint.sh`) the way Kubernetes does:
/// one server and two StatefulSet-style clients (`fed-client-0`, `fed-client-1`) that all
/// read one shared `federation.toml`, each picking its data and certificate from its
/// ordinal. The three run in a private network namespace (`unshare --net`), so the fixed
/// port cannot collide with anything on the machine; the namespace vanishes with them.
final class EntrypointFederationTests: XCTestCase {
    func testEntrypointRunsAFederationFromOneSharedConfig() throws {
        let cluster = NetnsLauncher.repository + "/cluster"
        let bin = NetnsLauncher.binaries
        let probe = Process()
        probe.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        probe.arguments = ["unshare", "--net", "true"]
        probe.standardOutput = FileHandle.nullDevice
        probe.standardError = FileHandle.nullDevice
        try probe.run()
        probe.waitUntilExit()
        if probe.terminationStatus != 0 {
            throw XCTSkip("cannot create a private network namespace (needs root and util-linux unshare; uid \(getuid()))")
        }
        guard FileManager.default.isExecutableFile(atPath: "\(bin)/fed-server"), FileManager.default.isExecutableFile(atPath: "\(bin)/fed-client") else {
            return XCTFail("\(bin)/fed-server or fed-client is missing: build the daemons first (swift build --build-tests) or set FEDKIT_BIN")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-entrypoint-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try """
            # one file for the server and every client, as in cluster/k8s/configmap.yaml
            strategy = "fedwon"
            widths = [4, 4, 8, 16, 8]
            host = "127.0.0.1"
            port = 7443
            rounds = 2
            min-clients = 2
            min-fit-clients = 2
            batch-size = 16
            connect-timeout = 30
            round-timeout = 30
            server = "localhost:7443"
            train-count = 100
            test-count = 50
            """.write(toFile: "\(dir)/federation.toml", atomically: true, encoding: .utf8)

        // Inside the namespace: loopback up, the server, then both clients; every child dies with the script.
        let script = """
            set -u
            trap 'kill $(jobs -p) 2>/dev/null' EXIT
            ip link set lo up 2>/dev/null || ifconfig lo up 2>/dev/null || true
            bash "$CLUSTER/certs.sh" --server-name localhost "$DIR/tls" mnist-0 usps-0 2>/dev/null || exit 90
            export FEDKIT_BIN="$BIN" FEDKIT_CONFIG="$DIR/federation.toml" FEDKIT_TLS_DIR="$DIR/tls"
            export FEDKIT_IDLE_AFTER_FINISH=0 FEDKIT_CLIENTS=2 FEDKIT_DOMAINS=mnist,usps FEDKIT_ORDINAL=
            FEDKIT_STATE_DIR="$DIR/server" bash "$CLUSTER/k8s/entrypoint.sh" server >"$DIR/server.log" 2>&1 & s=$!
            HOSTNAME=fed-client-0 FEDKIT_STATE_DIR="$DIR/c0" bash "$CLUSTER/k8s/entrypoint.sh" client >"$DIR/c0.log" 2>&1 & a=$!
            HOSTNAME=fed-client-1 FEDKIT_STATE_DIR="$DIR/c1" bash "$CLUSTER/k8s/entrypoint.sh" client >"$DIR/c1.log" 2>&1 & b=$!
            wait $s; rs=$?; wait $a; ra=$?; wait $b; rb=$?
            echo "server=$rs c0=$ra c1=$rb"
            [ $rs -eq 0 ] && [ $ra -eq 0 ] && [ $rb -eq 0 ]
            """
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["unshare", "--net", "--kill-child", "bash", "-c", script]
        p.environment = ProcessInfo.processInfo.environment.merging(["CLUSTER": cluster, "DIR": dir, "BIN": bin]) { $1 }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let deadline = Date().addingTimeInterval(90)
        while p.isRunning && Date() < deadline { usleep(100_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }  // --kill-child takes the script and its daemons along
        p.waitUntilExit()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        func log(_ name: String) -> String { (try? String(contentsOfFile: "\(dir)/\(name)", encoding: .utf8)) ?? "(no \(name))" }
        XCTAssertEqual(p.terminationStatus, 0, "\(output)\n--- server.log ---\n\(log("server.log"))\n--- c0.log ---\n\(log("c0.log"))\n--- c1.log ---\n\(log("c1.log"))")

        let lines = log("server/metrics.jsonl").split(separator: "\n")
        XCTAssertEqual(lines.count, 2, "metrics.jsonl should hold 2 rounds")
        let last = try XCTUnwrap(lines.last.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        let evaluated = Set((last["evaluation"] as? [[String: Any]] ?? []).compactMap { $0["client"] as? String })
        XCTAssertEqual(evaluated, ["mnist-0", "usps-0"], "the ordinals should have become mnist-0 and usps-0")
    }
}
