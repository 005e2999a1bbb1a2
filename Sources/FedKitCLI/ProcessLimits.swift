#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Per-process limits the daemons set for themselves at start.
public enum ProcessLimits {
    /// Highest open-file limit asked for when the hard limit is unlimited (Linux's default `nr_open`).
    public static let openFileCeiling: UInt64 = 1 << 20

    /// Raises this process's soft limit on open files to its hard limit (at most
    /// `openFileCeiling`): every client connection holds a descriptor, and the soft limit of a
    /// login shell or a service is often 1,024 while the hard one is far higher, so without
    /// this a coordinator stops accepting clients at about a thousand.
    /// - Returns: the soft limit before and after; nil when it could not be read or was not
    ///   changed (already at the hard limit).
    @discardableResult
    public static func raiseOpenFileLimit() -> (before: UInt64, after: UInt64)? {
        var limit = rlimit()
        #if canImport(Glibc)
        let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
        #else
        let resource = RLIMIT_NOFILE
        #endif
        guard getrlimit(resource, &limit) == 0 else { return nil }
        let before = UInt64(limit.rlim_cur)
        let target = min(UInt64(limit.rlim_max), openFileCeiling)
        guard target > before else { return nil }
        limit.rlim_cur = rlim_t(target)
        guard setrlimit(resource, &limit) == 0 else { return nil }
        return (before, target)
    }
}
