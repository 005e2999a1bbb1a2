import Foundation

/// Resident memory of a process, read from `/proc/PID/status` (Linux), in MB (10⁶ bytes, the
/// unit model sizes are given in, so that ratios need no conversion); 0 where unavailable.
public enum ProcessMemory {
    /// The field `name` (`VmRSS`, `VmHWM`, …) of a process's status, in MB; `pid` nil for this process.
    public static func field(_ name: String, pid: Int32? = nil) -> Double {
        let path = "/proc/\(pid.map(String.init) ?? "self")/status"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kb * 1024 / 1e6  // the kernel's "kB" are KiB
        }
        return 0
    }

    /// Resident memory now.
    public static func currentRSS(pid: Int32? = nil) -> Double { field("VmRSS", pid: pid) }
    /// Peak resident memory so far (the kernel's high-water mark).
    public static func peakRSS(pid: Int32? = nil) -> Double { field("VmHWM", pid: pid) }
}

extension ProcessMemory {
    /// Allocations of at least this many bytes are mapped and unmapped on their own.
    public static let largeAllocationThreshold: Int32 = 1 << 20
    /// Free memory each of glibc's heaps keeps at its top instead of giving it back.
    public static let heapTopRetention: Int32 = 4 << 20

    /// Makes glibc give large freed buffers back to the system at once, and keep the memory of
    /// smaller ones for the next.
    ///
    /// By default glibc raises its mmap threshold each time a large mapped buffer is freed
    /// (up to 32 MiB), after which model-sized payloads, chunks and TLS buffers come from
    /// per-thread heaps that keep their memory when freed: a server that received many
    /// updates stays hundreds of MB above what it references. Fixing the threshold at
    /// `largeAllocationThreshold` maps each such buffer separately and returns it on free.
    ///
    /// Fixing it also fixes the heaps' trim threshold at glibc's 128 KiB, below a single 256
    /// KiB frame: the frame, TLS and read buffers that every chunk passes through, thousands a
    /// round, were then given back as they were freed and faulted in again by the next one —
    /// 2.3 million page faults and 6 s of system time in a round of 50 digit-model clients.
    /// Heaps now keep `heapTopRetention` free (0.17–0.23 million faults, 2.6–2.8 s, for 4–8 MB
    /// more peak memory; docs/server-memory.md). No effect where glibc is not the allocator.
    public static func returnLargeBuffersToTheSystem() {
        // mallopt(…), looked up at run time: <malloc.h> is not in Swift's Glibc module.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mmapThreshold: Int32 = -3, trimThreshold: Int32 = -1  // M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
        guard let symbol = dlsym(nil, "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        _ = mallopt(mmapThreshold, largeAllocationThreshold)
        _ = mallopt(trimThreshold, heapTopRetention)
    }
}
