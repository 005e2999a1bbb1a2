import Foundation
import NIOCore

/// A bound, shared by every connection of a server, on how many chunked payloads are being
/// reassembled at once.
///
/// Each payload being reassembled costs its full size until it completes (the receiver
/// checks it whole before anything uses it). Without a bound, a server whose clients all
/// finish training at about the same time holds one update per client. With one, a
/// connection whose next payload finds no permit free stops reading (TCP holds the rest
/// back at the sender) until one is released, so memory for reassembly is at most
/// `limit` payloads, however many clients answer at once.
///
/// A payload that holds a permit must arrive at a minimum pace: within `grace` plus its size
/// over `minimumRate` from the moment it got the permit. Otherwise its connection is closed
/// (`WireError.transferTooSlow`) and the permit goes to the next in line, so that a few
/// clients that start an update and then trickle it cannot keep every other update waiting.
///
/// Thread-safe: connections on different event loops share one instance.
public final class ReceivePermits: @unchecked Sendable {
    /// Default slowest pace of a payload holding a permit: 0.1 MB/s (0.8 Mbit/s), so that only
    /// a transfer that has all but stopped is cut off, not an honest client on a slow link.
    public static let defaultMinimumRate = 100_000
    /// Default time a payload holding a permit has on top of its size over the rate: 10 s.
    public static let defaultGrace = TimeAmount.seconds(10)

    /// Payloads that may be reassembled at once.
    public let limit: Int
    /// Slowest pace, in bytes per second, of a payload holding a permit.
    public let minimumRate: Int
    /// Time a payload holding a permit has on top of its size over `minimumRate`.
    public let grace: TimeAmount
    private let lock = NSLock()
    private var available: Int
    private var waiters: [(id: UInt64, loop: any EventLoop, granted: @Sendable () -> Void)] = []
    private var nextID: UInt64 = 0

    /// - Parameters:
    ///   - limit: Payloads that may be reassembled at once, at least 1.
    ///   - minimumRate: Slowest pace of a payload holding a permit, bytes per second, at least 1.
    ///   - grace: Time on top of its size over `minimumRate`, not negative.
    public init(limit: Int, minimumRate: Int = ReceivePermits.defaultMinimumRate, grace: TimeAmount = ReceivePermits.defaultGrace) {
        precondition(limit >= 1, "limit must be at least 1")
        precondition(minimumRate >= 1, "minimumRate must be at least 1")
        precondition(grace.nanoseconds >= 0, "grace must not be negative")
        self.limit = limit
        self.minimumRate = minimumRate
        self.grace = grace
        self.available = limit
    }

    /// Time a payload of `bytes` has to arrive once it holds a permit.
    public func timeLimit(forBytes bytes: UInt64) -> TimeAmount {
        let seconds = Double(bytes) / Double(minimumRate)
        return grace + .nanoseconds(Int64(min(seconds, 1e9) * 1e9))
    }

    /// Takes a permit now if one is free (returns `nil`); otherwise queues the caller and
    /// returns a ticket: `granted` runs on `loop` when the permit is handed over (the caller
    /// then holds it), unless the ticket was cancelled first.
    func acquire(on loop: any EventLoop, granted: @escaping @Sendable () -> Void) -> UInt64? {
        lock.lock()
        defer { lock.unlock() }
        if available > 0 {
            available -= 1
            return nil
        }
        nextID &+= 1
        waiters.append((nextID, loop, granted))
        return nextID
    }

    /// Gives a held permit back: to the longest waiter, or to the pool.
    func release() {
        lock.lock()
        if waiters.isEmpty {
            available = min(limit, available + 1)
            lock.unlock()
            return
        }
        let next = waiters.removeFirst()
        lock.unlock()
        next.loop.execute(next.granted)
    }

    /// Withdraws a queued request; returns false when it was already granted (the caller
    /// then holds a permit, or will once `granted` runs, and must release it).
    func cancel(_ ticket: UInt64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard let i = waiters.firstIndex(where: { $0.id == ticket }) else { return false }
        waiters.remove(at: i)
        return true
    }

    /// Permits free now (for tests and reports).
    public var free: Int {
        lock.lock()
        defer { lock.unlock() }
        return available
    }
}
