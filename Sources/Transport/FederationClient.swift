import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Wire

/// A FedKit client's dialer: connects to the coordinator over TLS 1.3 with mutual
/// authentication and completes the Hello/Welcome exchange.
public enum FederationClient {
    /// Connects once.
    /// - Parameters:
    ///   - host: The server's IP address or DNS name; the server's certificate must name it
    ///     (or `configuration.serverHostname` when set).
    ///   - port: The server's port.
    ///   - configuration: TLS credentials, Hello, limits and timeouts.
    ///   - group: Event loops to run on.
    /// - Returns: The established session, after the server's Welcome.
    /// - Throws: `TransportError.rejected` when the server refuses the Hello; a TLS error when a
    ///   certificate is refused; a connection error when the server cannot be reached.
    public static func connect(host: String, port: Int, configuration: ClientConfiguration,
                               group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> PeerConnection {
        let context = try NIOSSLContext(configuration: configuration.tls)
        let hostname = configuration.serverHostname ?? (isIPAddress(host) ? nil : host)
        var sessionLogger = configuration.logger
        sessionLogger[metadataKey: "remote"] = "\(host):\(port)"
        let logger = sessionLogger
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(configuration.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port)
            .get()
        let established = channel.eventLoop.makePromise(of: PeerConnection.self)
        do {
            try await channel.eventLoop.submit {
                let sync = channel.pipeline.syncOperations
                try sync.addHandler(NIOSSLClientHandler(context: context, serverHostname: hostname))
                try FedPipeline.addCommonHandlers(
                    to: sync, maximumFrameSize: configuration.maximumFrameSize,
                    maximumPayloadSize: configuration.maximumPayloadSize, chunkSize: configuration.chunkSize,
                    readTimeout: configuration.readTimeout, heartbeatInterval: configuration.heartbeatInterval)
                try sync.addHandler(ClientSessionHandler(hello: configuration.hello, logger: logger,
                                                         readTimeout: configuration.readTimeout, established: established))
                // A connection closed by the peer before these handlers were added (a server
                // killed right after accepting) never tells them: without this check,
                // `established` would wait forever.
                guard channel.isActive else { throw TransportError.closedBeforeEstablished(state: "adding the TLS handlers") }
            }.get()
        } catch {
            established.fail(error)
            try? await channel.close()
            throw error
        }
        return try await established.futureResult.get()
    }

    static func isIPAddress(_ host: String) -> Bool {
        (try? SocketAddress(ipAddress: host, port: 0)) != nil
    }
}
