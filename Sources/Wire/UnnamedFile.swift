#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A temporary file without a name: `O_TMPFILE` where the file system has it, else a named
/// file removed as soon as it is open. Nothing of it is left behind when it is closed, even
/// by a crash. Written through the page cache and never synced.
public final class UnnamedFile {
    /// The open descriptor, or −1 once closed.
    public private(set) var descriptor: Int32

    /// A failed system call, by name, with the system's reason.
    public struct IOError: Error, CustomStringConvertible {
        public let call: String
        public let code: Int32
        public var description: String { "\(call): \(String(cString: strerror(code)))" }
        public init(call: String, code: Int32) {
            self.call = call
            self.code = code
        }
    }

    /// Creates the file in `directory`.
    /// - Throws: `IOError` naming the directory when no file can be created there.
    public init(directory: String) throws {
        #if os(Linux)
        // O_TMPFILE is a compound macro the C importer drops: __O_TMPFILE | O_DIRECTORY, the
        // same values on every Linux architecture Swift runs on.
        let tmpfile: Int32 = 0o20_000_000 | O_DIRECTORY
        var fd = open(directory, tmpfile | O_RDWR | O_CLOEXEC, 0o600)
        #else
        var fd: Int32 = -1
        #endif
        if fd < 0 {
            // A file system without O_TMPFILE: a named file, removed at once.
            var template = Array((directory + "/.fedkit-XXXXXX").utf8CString)
            fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard fd >= 0 else { throw IOError(call: "open \(directory)", code: errno) }
            _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        }
        descriptor = fd
    }

    deinit { close() }

    /// Writes all of `bytes` at `offset`.
    /// - Throws: `IOError` (a full disk, an I/O error).
    public func write(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw IOError(call: "write", code: errno)
            }
            done += n
        }
    }

    /// Reads exactly `count` bytes at `offset` into `buffer`.
    /// - Throws: `IOError`, also when the file ends first.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int, at offset: Int) throws {
        var done = 0
        while done < count {
            let n = pread(descriptor, buffer + done, count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw IOError(call: "read", code: errno)
            }
            guard n > 0 else { throw IOError(call: "read", code: EIO) }
            done += n
        }
    }

    /// Closes the file; its blocks and pages are freed. Idempotent.
    public func close() {
        guard descriptor >= 0 else { return }
        #if canImport(Glibc)
        _ = Glibc.close(descriptor)
        #else
        _ = Darwin.close(descriptor)
        #endif
        descriptor = -1
    }

    /// Whether `directory` is on a file system that keeps its files in memory (tmpfs, ramfs):
    /// moving bytes into a file there saves no memory.
    public static func isMemoryBacked(_ directory: String) -> Bool {
        #if os(Linux)
        // statfs(2), looked up at run time: <sys/vfs.h> is not in Swift's Glibc module. Its
        // struct starts with f_type, a long, on every Linux architecture Swift runs on.
        typealias StatFS = @convention(c) (UnsafePointer<CChar>, UnsafeMutableRawPointer) -> Int32
        guard let symbol = dlsym(nil, "statfs") else { return false }
        let info = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 16)
        defer { info.deallocate() }
        guard unsafeBitCast(symbol, to: StatFS.self)(directory, info) == 0 else { return false }
        let type = info.load(as: Int.self)
        let tmpfs = 0x0102_1994, ramfs = 0x8584_58F6
        return type == tmpfs || type == ramfs
        #else
        return false
        #endif
    }
}
