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

    /// Makes glibc give large freed buffers back to the system at once.
    ///
    /// By default glibc raises its mmap threshold each time a large mapped buffer is freed
    /// (up to 32 MiB), after which model-sized payloads, chunks and TLS buffers come from
    /// per-thread heaps that keep their memory when freed: a server that received many
    /// updates stays hundreds of MB above what it references. Fixing the threshold at
    /// `largeAllocationThreshold` maps each such buffer separately and returns it on free.
    /// The cost is a page fault per page of each fresh large buffer, small beside a round's
    /// network and training time. No effect where glibc is not the allocator.
    public static func returnLargeBuffersToTheSystem() {
        // mallopt(M_MMAP_THRESHOLD, …), looked up at run time: <malloc.h> is not in Swift's Glibc module.
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        let mmapThreshold: Int32 = -3  // M_MMAP_THRESHOLD
        if let symbol = dlsym(nil, "mallopt") { _ = unsafeBitCast(symbol, to: Mallopt.self)(mmapThreshold, largeAllocationThreshold) }
    }
}
