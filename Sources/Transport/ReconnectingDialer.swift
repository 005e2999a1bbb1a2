import Logging
import NIOCore
import NIOPosix
import NIOSSL

/// Dials a FedKit server until a session is established, waiting `backoff` between attempts.
///
/// Network failures, TLS failures and dropped connections are retried; a `Reject` from the
/// server is not (dialling again would be refused again) and is thrown at once, as is
/// cancellation of the calling task.
public struct ReconnectingDialer: Sendable {
    /// Where to dial.
    public var host: String
    /// Port to dial.
    public var port: Int
    /// Credentials, Hello, limits and timeouts.
    public var configuration: ClientConfiguration
    /// Delays between attempts.
    public var backoff: Backoff
    /// Give up after this many attempts; `nil` retries forever.
    public var maximumAttempts: Int?

    public init(host: String, port: Int, configuration: ClientConfiguration, backoff: Backoff = .default, maximumAttempts: Int? = nil) {
        self.host = host
        self.port = port
        self.configuration = configuration
        self.backoff = backoff
        self.maximumAttempts = maximumAttempts
    }

    /// Connects, retrying with back-off.
    /// - Returns: The established session.
    /// - Throws: `TransportError.rejected` at once; `TransportError.connectFailed` after
    ///   `maximumAttempts`; `CancellationError` when the task is cancelled.
    public func connect(group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> PeerConnection {
        var attempt = 0
        while true {
            try Task.checkCancellation()
            do {
                return try await FederationClient.connect(host: host, port: port, configuration: configuration, group: group)
            } catch let error as TransportError {
                if case .rejected = error { throw error }
                try await wait(after: error, attempt: &attempt)
            } catch {
                try await wait(after: error, attempt: &attempt)
            }
        }
    }

    private func wait(after error: Error, attempt: inout Int) async throws {
        attempt += 1
        if let maximumAttempts, attempt >= maximumAttempts {
            throw TransportError.connectFailed(attempts: attempt, lastError: "\(error)")
        }
        let delay = backoff.delay(attempt: attempt - 1)
        configuration.logger.notice("connection attempt failed; retrying", metadata: [
            "attempt": "\(attempt)", "delay_ms": "\(delay.nanoseconds / 1_000_000)", "error": "\(error)",
        ])
        try await Task.sleep(nanoseconds: UInt64(delay.nanoseconds))
    }
}
