import Foundation
import NN
import XCTest
@testable import Federated

/// A checkpoint directory that fills up or becomes unwritable in the middle of a run.
///
/// As root (CI containers) the state directory is a small tmpfs that is filled to the last
/// byte after round 1: a real ENOSPC. Without root it is made read-only (EACCES).
final class DiskFaultTests: XCTestCase {
    /// A state directory whose next write fails on demand.
    final class FragileDirectory: @unchecked Sendable {
        let path: String
        let mounted: Bool
        init(name: String) throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-faults-\(name)-\(getpid())").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            mounted = geteuid() == 0 && Self.shell("mount -t tmpfs -o size=1m fedkit-faults \(path)") == 0
        }

        /// Makes every further write fail: fills the tmpfs, or removes write permission.
        func breakIt() {
            if mounted {
                let fd = open(path + "/filler", O_WRONLY | O_CREAT, 0o644)
                let block = [UInt8](repeating: 0xAB, count: 4096)
                while write(fd, block, block.count) > 0 {}
                _ = write(fd, block, 1)
                close(fd)
                // Keep going until not even one byte fits.
                let fd2 = open(path + "/filler2", O_WRONLY | O_CREAT, 0o644)
                while write(fd2, block, 1) > 0 {}
                close(fd2)
            } else {
                chmod(path, 0o500)
            }
        }

        var reason: String { mounted ? "No space left on device" : "Permission denied" }

        func remove() {
            if mounted { _ = Self.shell("umount \(path)") } else { chmod(path, 0o700) }
            try? FileManager.default.removeItem(atPath: path)
        }

        @discardableResult
        static func shell(_ command: String) -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", command]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            do { try p.run() } catch { return -1 }
            p.waitUntilExit()
            return p.terminationStatus
        }
    }

    func testAFullOrUnwritableCheckpointDirectoryStopsTheRunAndKeepsThePreviousCheckpoint() async throws {
        let dir = try FragileDirectory(name: "disk")
        defer { dir.remove() }
        let checkpointPath = dir.path + "/checkpoint.fkt"
        let saved = ManagedBox<Foundation.Data>()
        let config = InProcess.configuration(rounds: 3, minFit: 1, stateDirectory: dir.path)
        let coordinator = try Coordinator(configuration: config, logger: InProcess.quiet) { metrics, _ in
            // Called after round 1's checkpoint: keep its bytes, then break the disk.
            guard metrics.round == 1 else { return }
            saved.value = FileManager.default.contents(atPath: checkpointPath)
            dir.breakIt()
        }
        let server = try await InProcess.startServer()
        let runtime = try InProcess.runtime("mnist-0", domain: .mnist, model: config.model)
        let port = server.port
        let client = Task { try await InProcess.serveHonestly(runtime, port: port) }
        defer { client.cancel() }
        do {
            _ = try await coordinator.run(connections: server.connections)
            XCTFail("the run went on without being able to write its checkpoint")
        } catch let error as FederatedError {
            guard case .writeFailed(let path, let reason) = error else { return XCTFail("unexpected error \(error)") }
            XCTAssertEqual(path, checkpointPath)
            XCTAssertTrue(reason.contains(dir.reason), reason)
            XCTAssertTrue("\(error)".contains(checkpointPath) && "\(error)".contains("the previous file is kept"), "\(error)")
        }
        await server.close()
        let completed = await coordinator.completedRound
        XCTAssertEqual(completed, 2, "round 2 trained, its checkpoint failed")
        // The previous checkpoint is byte for byte the one of round 1, and it decodes.
        let before = try XCTUnwrap(saved.value)
        XCTAssertEqual(FileManager.default.contents(atPath: checkpointPath), before)
        XCTAssertEqual(try readCheckpoint(dir.path)?.metadata.round, 1)
        let temporaries = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(temporaries, [], "a failed write left its temporary file")
        print("disk fault (\(dir.mounted ? "full tmpfs" : "read-only directory")): run stopped at round 2 with \"\(dir.reason)\", checkpoint of round 1 intact")
    }

    /// The daemon's side: it exits with a failure status and says which path it could not write.
    func testTheServerDaemonExitsNamingThePathItCannotWrite() throws {
        let fed = try DaemonFederation(name: "disk-daemon", clients: ["mnist-0"])
        addTeardownBlock { fed.stopAll(); fed.removeFiles() }
        let dir = try FragileDirectory(name: "disk-daemon-state")
        defer { dir.remove() }
        dir.breakIt()
        let server = try fed.startServer(stateDir: dir.path, rounds: 2, minFit: 1, minClients: 1, roundTimeout: 20)
        let port = try fed.port(of: server)
        _ = try fed.startClient("mnist-0", port: port)
        XCTAssertEqual(try server.waitForExit(timeout: 60), 1, server.tail())
        let log = server.text
        XCTAssertTrue(log.contains("could not write \(dir.path)/"), log)
        XCTAssertTrue(log.contains(dir.reason), log)
        XCTAssertFalse(log.contains("round 1/2:"), "the server reported a round it could not checkpoint")
    }
}

/// A value set inside a callback and read afterwards.
final class ManagedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T?
    var value: T? {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}
