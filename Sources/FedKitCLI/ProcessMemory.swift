import Foundation

/// Resident memory of a process, read from `/proc/PID/status` (Linux), in MB; 0 where unavailable.
public enum ProcessMemory {
    /// The field `name` (`VmRSS`, `VmHWM`, …) of a process's status, in MB; `pid` nil for this process.
    public static func field(_ name: String, pid: Int32? = nil) -> Double {
        let path = "/proc/\(pid.map(String.init) ?? "self")/status"
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return 0 }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Double($0) } ?? 0
            return kb / 1024
        }
        return 0
    }

    /// Resident memory now.
    public static func currentRSS(pid: Int32? = nil) -> Double { field("VmRSS", pid: pid) }
    /// Peak resident memory so far (the kernel's high-water mark).
    public static func peakRSS(pid: Int32? = nil) -> Double { field("VmHWM", pid: pid) }
}
