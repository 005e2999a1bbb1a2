import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Bytes to be sent many times, kept in the page cache instead of the process's own memory:
/// written once to an `UnnamedFile` and read through a shared, read-only mapping of it.
///
/// A coordinator sends the same model to every client. Served from here, the model's pages
/// are not in the process's resident memory at all: views of it (`data(_:)`) go into messages
/// uncopied, and where a message is chunked for sending, the chunker and the connection read
/// each chunk's bytes from the file (`copyBytes(of:into:)`, `fileCopy(of:)`: pread into a
/// chunk-sized buffer) instead of through the mapping, so serving a model costs no page faults.
/// The page cache keeps the bytes (every send reads them from there without a disk access),
/// and the kernel can write them to the file's disk and reuse the memory when it is short,
/// which it cannot do with anonymous memory without swap. Pages that are read through the
/// mapping can be dropped again (`releaseAll`): a shared mapping reads the file's contents
/// again on the next access, so dropping is always safe.
///
/// On a file system that keeps files in memory (`UnnamedFile.isMemoryBacked`) nothing is
/// saved: use the bytes where they are instead. Reading the file from a disk that fails
/// meanwhile is an error for the send (`copyBytes`, `fileCopy`); reading a view's page through
/// the mapping then stops the process (`SIGBUS`), as a failing swap device would.
public final class PageCacheBuffer: @unchecked Sendable {
    /// Where each segment starts in the file and the mapping (page-aligned), and its size.
    public let segments: [(offset: Int, count: Int)]
    /// Bytes mapped: the segments, each rounded up to whole pages.
    public let byteCount: Int
    /// The file (internal: a test makes it unreadable).
    let file: UnnamedFile
    private let base: UnsafeMutableRawPointer

    /// Writes `contents`, one segment each, to a new unnamed file in `directory` and maps it.
    /// - Throws: `UnnamedFile.IOError` when the file cannot be created, written (a full disk)
    ///   or mapped; nothing is left behind.
    public init(directory: String, contents: [UnsafeRawBufferPointer]) throws {
        let page = Self.pageSize
        var segments: [(offset: Int, count: Int)] = []
        var end = 0
        for c in contents {
            segments.append((end, c.count))
            end += (c.count + page - 1) / page * page
        }
        self.segments = segments
        byteCount = max(end, page)
        file = try UnnamedFile(directory: directory)
        for (c, s) in zip(contents, segments) where c.count > 0 { try file.write(c, at: s.offset) }
        guard ftruncate(file.descriptor, off_t(byteCount)) == 0 else { throw UnnamedFile.IOError(call: "truncate", code: errno) }
        guard let mapped = mmap(nil, byteCount, PROT_READ, MAP_SHARED, file.descriptor, 0), mapped != MAP_FAILED else {
            throw UnnamedFile.IOError(call: "mmap", code: errno)
        }
        base = mapped
        // Writing went through the page cache, not this mapping: nothing of it is resident yet.
        Self.registry.add(self)
    }

    deinit {
        Self.registry.remove(self)
        munmap(base, byteCount)
    }

    /// Segment `i` as bytes read through the mapping (no copy). The view keeps this buffer
    /// alive; it must not be mutated (the mapping is read-only).
    public func data(_ i: Int) -> Data {
        let s = segments[i]
        guard s.count > 0 else { return Data() }
        return Data(bytesNoCopy: base + s.offset, count: s.count, deallocator: .custom { [self] _, _ in withExtendedLifetime(self) {} })
    }

    /// Copies segment `i` into `destination` (`segments[i].count` bytes), reading the file
    /// rather than the mapping: an I/O error is an error here, not a signal.
    /// - Throws: `UnnamedFile.IOError`.
    public func copy(_ i: Int, into destination: UnsafeMutableRawPointer) throws {
        try file.read(into: destination, count: segments[i].count, at: segments[i].offset)
    }

    /// Drops this process's mapping of all of it (pages read through views: a payload small
    /// enough to go unchunked is encoded from its mapping).
    public func releaseAll() { madvise(base, byteCount, MADV_DONTNEED) }

    /// Reads `count` bytes of the mapping at `address` from the file instead (pread): the
    /// mapping's pages are not touched, so they cost no page faults and need no dropping.
    func read(at address: UnsafeRawPointer, count: Int, into destination: UnsafeMutableRawPointer) throws {
        let offset = address - UnsafeRawPointer(base)
        precondition(offset >= 0 && offset + count <= byteCount, "bytes outside the buffer")
        try file.read(into: destination, count: count, at: offset)
        checksumsLock.withLock { bytesRead += count }
    }

    /// Copies `data` into `destination` (`data.count` bytes): read from the file when it is a
    /// view of a `PageCacheBuffer` — its mapping then never enters this process's memory, with
    /// no page faults and nothing to drop, and a disk that fails is an error, not a signal —
    /// and copied as usual otherwise.
    /// - Throws: `UnnamedFile.IOError` when the file cannot be read.
    public static func copyBytes(of data: Data, into destination: UnsafeMutableRawPointer) throws {
        try data.withUnsafeBytes { bytes in
            guard let start = bytes.baseAddress else { return }
            if !registry.isEmpty, let owner = registry.owner(of: start) {
                try owner.read(at: start, count: bytes.count, into: destination)
            } else {
                destination.copyMemory(from: start, byteCount: bytes.count)
            }
        }
    }

    /// A copy of `data` read from the file (see `copyBytes(of:into:)`) when it is a view of a
    /// `PageCacheBuffer`; nil for any other bytes, which need no copy.
    /// - Throws: `UnnamedFile.IOError` when the file cannot be read.
    public static func fileCopy(of data: Data) throws -> Data? {
        guard !registry.isEmpty, !data.isEmpty, isMapped(data) else { return nil }
        // Uninitialized (not `Data(count:)`, which zeroes every byte the read then overwrites).
        let bytes = UnsafeMutableRawPointer.allocate(byteCount: data.count, alignment: 16)
        do {
            try copyBytes(of: data, into: bytes)
        } catch {
            bytes.deallocate()
            throw error
        }
        return Data(bytesNoCopy: bytes, count: data.count, deallocator: .custom { p, _ in p.deallocate() })
    }

    /// Checksums of payloads made of this buffer's bytes, by `checksumKey`.
    private var checksums: [Data: Data] = [:]
    /// Bytes read from the file so far (for tests).
    private(set) var bytesRead = 0
    private let checksumsLock = NSLock()

    func checksum(for key: Data) -> Data? { checksumsLock.withLock { checksums[key] } }
    func remember(_ checksum: Data, for key: Data) { checksumsLock.withLock { checksums[key] = checksum } }

    /// Bytes of other memory a payload may hold beside a buffer's for its checksum to be kept:
    /// tensor headers, not data.
    static let checksumKeyLimit = 64 << 10

    /// For a payload whose pieces are either views of one buffer or small (in all at most
    /// `checksumKeyLimit` bytes outside it): that buffer, and a key that determines the
    /// payload's bytes — each small piece's bytes, each view's place in the immutable buffer —
    /// and the checksum's `kind`. Nil for any other payload.
    static func checksumKey(_ kind: String, _ pieces: [Data]) -> (buffer: PageCacheBuffer, key: Data)? {
        guard !registry.isEmpty else { return nil }
        var owner: PageCacheBuffer?
        var key = Data(kind.utf8)
        var outside = 0
        func append(_ value: Int) { withUnsafeBytes(of: UInt64(value).littleEndian) { key.append(contentsOf: $0) } }
        for piece in pieces {
            let found: PageCacheBuffer?? = piece.withUnsafeBytes { bytes in
                guard let start = bytes.baseAddress, let b = registry.owner(of: start) else { return .some(nil) }
                if let owner, owner !== b { return .none }  // two buffers: not kept
                return .some(b)
            }
            guard let found else { return nil }
            if let b = found {
                owner = b
                key.append(1)
                append(piece.withUnsafeBytes { $0.baseAddress! - UnsafeRawPointer(b.base) })
                append(piece.count)
            } else {
                outside += piece.count
                guard outside <= checksumKeyLimit else { return nil }
                key.append(0)
                append(piece.count)
                key.append(piece)
            }
        }
        return owner.map { ($0, key) }
    }

    /// Whether `data` is a view of a `PageCacheBuffer`.
    public static func isMapped(_ data: Data) -> Bool {
        guard !registry.isEmpty else { return false }
        return data.withUnsafeBytes { bytes in bytes.baseAddress.map { registry.owner(of: $0) != nil } ?? false }
    }

    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    static let registry = Registry()

    /// The mappings alive, by address, so that a chunk of bytes can be traced to its buffer.
    final class Registry: @unchecked Sendable {
        private let lock = NSLock()
        private var buffers: [(start: UInt, end: UInt, buffer: Unmanaged<PageCacheBuffer>)] = []

        var isEmpty: Bool { lock.withLock { buffers.isEmpty } }

        func add(_ b: PageCacheBuffer) {
            let start = UInt(bitPattern: b.base)
            lock.withLock { buffers.append((start, start + UInt(b.byteCount), .passUnretained(b))) }
        }

        func remove(_ b: PageCacheBuffer) {
            let start = UInt(bitPattern: b.base)
            lock.withLock { buffers.removeAll { $0.start == start } }
        }

        /// The buffer whose mapping holds `address`. Only valid while something keeps it alive:
        /// the caller's view of its bytes does.
        func owner(of address: UnsafeRawPointer) -> PageCacheBuffer? {
            let a = UInt(bitPattern: address)
            return lock.withLock { buffers.first { $0.start <= a && a < $0.end }?.buffer.takeUnretainedValue() }
        }
    }
}
