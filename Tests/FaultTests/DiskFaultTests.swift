import Foundation
import NN
import XCTest
@testable import Federated

/// A checkpoint directory that fills up or becomes unwritable in the middle of a run.
///
/// As root (CI containers) the state directory is a small tmpfs that is filled to the last
/// byte after round 1: a real ENOSPC. Without root it is made read-only (EACCES).
final class DiskFaultTests: XCTestCase {
    /// A state directory whose next write fails on demand, by the best means this machine allows.
    final class FragileDirectory: @unchecked Sendable {
        enum Mode: String {
            /// A 1 MB tmpfs, filled to the last byte: ENOSPC (needs root and mount).
            case fullTmpfs = "full-tmpfs"
            /// The directory made read-only: EACCES (root ignores permissions).
            case readOnly = "read-only"
            /// RLIMIT_FSIZE below the checkpoint's size: EFBIG (root without mount).
            case fileSizeLimit = "file-size-limit"
        }
        let path: String
        let mode: Mode
        private var savedLimit = rlimit()

        init(name: String) throws {
            path = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-faults-\(name)-\(getpid())").path
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let forced = ProcessInfo.processInfo.environment["FEDKIT_FAULTS_DISK_MODE"].flatMap(Mode.init(rawValue:))
            if geteuid() != 0 {
                mode = .readOnly
            } else if forced != .fileSizeLimit && Self.shell("mount -t tmpfs -o size=1m fedkit-faults '\(path)'") == 0 {
                mode = .fullTmpfs
            } else {
                mode = .fileSizeLimit
            }
        }

        /// Makes every further write of this process fail: fills the tmpfs, removes write
        /// permission, or lowers the file-size limit.
        func breakIt() {
            switch mode {
            case .fullTmpfs:
                let block = [UInt8](repeating: 0xAB, count: 4096)
                let fd = open(path + "/filler", O_WRONLY | O_CREAT, 0o644)
                while write(fd, block, block.count) > 0 {}
                while write(fd, block, 1) > 0 {}
                close(fd)
            case .readOnly:
                chmod(path, 0o500)
            case .fileSizeLimit:
                signal(SIGXFSZ, SIG_IGN)
                getrlimit(Self.fileSize, &savedLimit)
                var limit = savedLimit
                limit.rlim_cur = 16 * 1024  // below the checkpoint (~33 KB), above any log line
                setrlimit(Self.fileSize, &limit)
            }
        }

        /// Undoes `breakIt` for this process.
        func repair() {
            if mode == .fileSizeLimit && savedLimit.rlim_cur != 0 { setrlimit(Self.fileSize, &savedLimit) }
            if mode == .readOnly { chmod(path, 0o700) }
        }

        #if os(Linux)
        static let fileSize = __rlimit_resource_t(RLIMIT_FSIZE.rawValue)
        #else
        static let fileSize = RLIMIT_FSIZE
        #endif

        /// What the system says when the write fails.
        var reason: String {
            switch mode {
            case .fullTmpfs: return "No space left on device"
            case .readOnly: return "Permission denied"
            case .fileSizeLimit: return "File too large"
            }
        }

        /// For a daemon: a shell prefix that breaks its writes the same way (file-size limit mode only).
        var daemonWrapper: String? { mode == .fileSizeLimit ? "trap '' XFSZ; ulimit -f 32; exec \"$0\" \"$@\"" : nil }

        func remove() {
            repair()
            if mode == .fullTmpfs { _ = Self.shell("umount '\(path)'") }
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
            dir.repair()
            XCTFail("the run went on without being able to write its checkpoint")
        } catch let error as FederatedError {
            dir.repair()
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
        print("disk fault (\(dir.mode.rawValue)): run stopped at round 2 with \"\(dir.reason)\", checkpoint of round 1 intact")
    }

    /// The daemon's side: it exits with a failure status and says which path it could not write.
    func testTheServerDaemonExitsNamingThePathItCannotWrite() throws {
        let fed = try DaemonFederation(name: "disk-daemon", clients: ["mnist-0"])
        addTeardownBlock { [unowned self] in fed.stopAll(); fed.finish(keepingLogs: (self.testRun?.totalFailureCount ?? 0) > 0) }
        let dir = try FragileDirectory(name: "disk-daemon-state")
        defer { dir.remove() }
        if dir.mode != .fileSizeLimit { dir.breakIt() }
        let server = try fed.startServer(stateDir: dir.path, rounds: 2, minFit: 1, minClients: 1, roundTimeout: 20, wrapper: dir.daemonWrapper)
        let port = try fed.port(of: server)
        _ = try fed.startClient("mnist-0", port: port)
        XCTAssertEqual(try server.waitForExit(timeout: 60), 1, server.tail())
        let log = server.text
        XCTAssertTrue(log.contains("could not write \(dir.path)/"), log)
        XCTAssertTrue(log.contains(dir.reason), log)
        XCTAssertFalse(log.contains("round 1/2:"), "the server reported a round it could not checkpoint")
    }

    /// A state directory that cannot be created is named with the system's reason, or with
    /// the file standing in its place; one that exists is used as it is.
    func testAStateDirectoryThatCannotBeCreatedSaysWhy() throws {
        let root = NSTemporaryDirectory() + "state-dir-\(UUID().uuidString)"
        try AtomicFile.makeDirectory(root + "/a/b")
        XCTAssertNoThrow(try AtomicFile.makeDirectory(root + "/a/b"))
        defer { try? FileManager.default.removeItem(atPath: root) }
        FileManager.default.createFile(atPath: root + "/file", contents: Foundation.Data([1]))
        func reason(_ path: String) -> String {
            do {
                try AtomicFile.makeDirectory(path)
            } catch FederatedError.directoryUnusable(let p, let reason) {
                XCTAssertEqual(p, path)
                return reason
            } catch {
                XCTFail("unexpected error \(error)")
            }
            return ""
        }
        XCTAssertEqual(reason(root + "/file"), "a file, not a directory, is there")
        XCTAssertEqual(reason(root + "/file/below"), String(cString: strerror(ENOTDIR)))
        XCTAssertEqual(reason("/proc/fedkit-\(getpid())"), String(cString: strerror(ENOENT)))
        XCTAssertEqual("\(FederatedError.directoryUnusable(path: "/x", reason: "y"))", "cannot create the directory /x: y")
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
