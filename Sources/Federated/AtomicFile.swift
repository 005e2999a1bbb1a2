import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that a reader sees either the old or the new content, never a mix:
/// write a temporary file beside the target, fsync it, rename it over the target,
/// fsync the directory.
public enum AtomicFile {
    /// Atomically replaces the file at `path` with `data`.
    /// - Throws: `FederatedError.writeFailed` naming the path and the system's reason
    ///   (a full disk, a read-only directory); the previous file is then untouched and
    ///   the temporary file removed.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { append in try data.withUnsafeBytes { try append($0) } }
    }

    /// Atomically replaces the file at `path` with the bytes `produce` passes, piece by
    /// piece, to the function it is given: large content is written from where it lies,
    /// without first being gathered into one buffer.
    /// - Throws: `FederatedError.writeFailed` as `write(_:to:)`, or what `produce` throws;
    ///   either way the previous file is untouched and the temporary file removed.
    public static func write(to path: String, _ produce: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let temporary = "\(directory)/.\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        func fail(_ what: String) -> FederatedError {
            let reason = "\(what): \(String(cString: strerror(errno)))"
            unlink(temporary)
            return .writeFailed(path: path, reason: reason)
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("cannot create \(temporary)") }
        struct WriteFailed: Error {}
        do {
            try produce { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Foundation.write(fd, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 { if errno == EINTR { continue }; throw WriteFailed() }
                    offset += n
                }
            }
        } catch is WriteFailed {
            let e = fail("write"); close(fd); throw e
        } catch {
            close(fd); unlink(temporary); throw error
        }
        if fsync(fd) != 0 { let e = fail("fsync"); close(fd); throw e }
        if close(fd) != 0 { throw fail("close") }
        if rename(temporary, path) != 0 { throw fail("rename") }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }

    /// Removes the temporary files that writers of `path` killed mid-write left beside it
    /// (`.NAME.PID.RANDOM.tmp`). Call it before the first write of a process that owns `path`.
    /// - Returns: How many were removed.
    @discardableResult
    public static func removeStaleTemporaries(of path: String) -> Int {
        let url = URL(fileURLWithPath: path)
        let directory = url.deletingLastPathComponent().path
        let prefix = ".\(url.lastPathComponent)."
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var removed = 0
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(".tmp") {
            if unlink("\(directory)/\(name)") == 0 { removed += 1 }
        }
        return removed
    }

    /// Creates `path` and its parents if needed (mode 0755, less the umask).
    /// - Throws: `FederatedError.directoryUnusable` saying why it cannot: the system's reason
    ///   (no such parent, not a directory, permission denied, read-only file system), or a
    ///   file in the way.
    public static func makeDirectory(_ path: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw FederatedError.directoryUnusable(path: path, reason: "a file, not a directory, is there") }
            return
        }
        // mkdir(2) for each missing ancestor, so that the failure is the system's own words.
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST {
                throw FederatedError.directoryUnusable(path: path, reason: String(cString: strerror(errno)))
            }
        }
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw FederatedError.directoryUnusable(path: path, reason: String(cString: strerror(ENOTDIR)))
        }
    }
}
