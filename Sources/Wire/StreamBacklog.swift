import Foundation
import NIOCore

/// A bound, shared by every connection of a server, on streamed chunks handed to the
/// application and not yet processed by it.
///
/// A streamed payload (`PayloadStream`) costs its receiver one chunk at a time, but only while
/// the application keeps up: chunks it has not processed yet wait in memory. Once `limit` of
/// them wait, a connection about to read another is held (its read is not passed on, so TCP
/// holds the bytes back at the sender) until the application catches up, whatever the number
/// of connections.
///
/// Thread-safe: connections on different event loops and the application share one instance.
public final class StreamBacklog: @unchecked Sendable {
    /// Default chunks waiting at once: 16 (4 MiB of the default 256 KiB chunks).
    public static let defaultLimit = 16

    /// Chunks that may wait at once.
    public let limit: Int
    private let lock = NSLock()
    private var waiting = 0
    private var held: [(loop: any EventLoop, resume: @Sendable () -> Void)] = []

    /// - Parameter limit: chunks that may wait at once, at least 1.
    public init(limit: Int = StreamBacklog.defaultLimit) {
        precondition(limit >= 1, "limit must be at least 1")
        self.limit = limit
    }

    /// A chunk was handed to the application.
    func added() {
        lock.lock()
        waiting += 1
        lock.unlock()
    }

    /// The application has processed a chunk it was handed: held reads go on, as many as
    /// there is room for (all of them, once nothing waits: a held connection that has closed
    /// meanwhile must not leave the others held).
    public func processed() {
        lock.lock()
        waiting = max(0, waiting - 1)
        let room = min(held.count, limit - waiting)
        guard room > 0 else {
            lock.unlock()
            return
        }
        let woken = held.prefix(room)
        held.removeFirst(room)
        lock.unlock()
        for next in woken { next.loop.execute(next.resume) }
    }

    /// A woken read whose connection has gone meanwhile: the next held one goes on instead.
    func passOn() {
        lock.lock()
        guard waiting < limit, !held.isEmpty else {
            lock.unlock()
            return
        }
        let next = held.removeFirst()
        lock.unlock()
        next.loop.execute(next.resume)
    }

    /// Whether a read may go on now; if not, `resume` runs on `loop` once it may (the caller
    /// then reads).
    func admit(on loop: any EventLoop, resume: @escaping @Sendable () -> Void) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if waiting < limit { return true }
        held.append((loop, resume))
        return false
    }

    /// Chunks handed over and not yet processed (for tests and reports).
    public var backlog: Int {
        lock.lock()
        defer { lock.unlock() }
        return waiting
    }
}
