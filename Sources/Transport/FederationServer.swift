import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Wire

/// A FedKit coordinator's listener: TLS 1.3 with mutual authentication on a TCP port.
///
/// Every accepted connection must complete the TLS handshake with a certificate signed by the
/// federation CA, pass the allow-list and send an acceptable Hello before it appears in
/// `connections`; every refusal is logged with its reason and the connection closed, while the
/// listener goes on serving others.
///
/// ```swift
/// let server = try await FederationServer.start(host: "0.0.0.0", port: 7443, configuration: .mutualTLS(credentials: creds))
/// for await client in server.connections {
///     Task { for try await envelope in client.inbound { ... }; }
/// }
/// ```
public final class FederationServer: Sendable {
    /// Established client sessions, in the order their Welcome was sent.
    public let connections: AsyncStream<PeerConnection>
    private let continuation: AsyncStream<PeerConnection>.Continuation
    private let channel: Channel

    private init(channel: Channel, connections: AsyncStream<PeerConnection>, continuation: AsyncStream<PeerConnection>.Continuation) {
        self.channel = channel
        self.connections = connections
        self.continuation = continuation
    }

    /// The port the server listens on (useful after binding port 0).
    public var port: Int { channel.localAddress?.port ?? 0 }

    /// The address the server listens on.
    public var localAddress: SocketAddress? { channel.localAddress }

    /// Starts listening.
    /// - Parameters:
    ///   - host: Address to bind, e.g. `"0.0.0.0"` or `"127.0.0.1"`.
    ///   - port: Port to bind; 0 lets the system choose.
    ///   - configuration: TLS, allow-list, limits and timeouts.
    ///   - group: Event loops to run on.
    /// - Throws: when the TLS configuration is invalid or the address cannot be bound.
    public static func start(host: String, port: Int, configuration: ServerConfiguration,
                             group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> FederationServer {
        let context = try NIOSSLContext(configuration: configuration.tls)
        let (stream, continuation) = AsyncStream.makeStream(of: PeerConnection.self)
        let settings = ServerSessionHandler.Settings(
            allowedClients: configuration.allowedClients, supportedVersions: configuration.supportedVersions,
            capabilities: configuration.capabilities, heartbeatInterval: configuration.heartbeatInterval,
            readTimeout: configuration.readTimeout, logger: configuration.logger)
        let onEstablished: @Sendable (PeerConnection) -> Void = { continuation.yield($0) }
        let permits = configuration.maximumConcurrentReceives.map {
            ReceivePermits(limit: max(1, $0), minimumRate: max(1, configuration.minimumReceiveRate),
                           grace: .nanoseconds(max(0, configuration.receiveGrace.nanoseconds)))
        }
        // Streamed updates cost a chunk each while they wait for the application, for all
        // connections together: one bound for the server.
        let backlog = configuration.capabilities.contains(WireProtocol.streamedPayloadCapability)
            ? StreamBacklog(limit: max(1, configuration.streamBacklog)) : nil
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            // One socket read (≤ 64 KiB) per read cycle: TLS keeps, per connection, a plaintext
            // buffer as large as the most it ever decrypted in one cycle, so with 50 clients the
            // default (4 reads) held ~25 MB for nothing.
            .childChannelOption(.maxMessagesPerRead, value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    var logger = configuration.logger
                    logger[metadataKey: "remote"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
                    var settings = settings
                    settings.logger = logger
                    let sync = channel.pipeline.syncOperations
                    if let verifier = ClientCertificateVerifier(tls: configuration.tls, logger: logger) {
                        try sync.addHandler(NIOSSLServerHandler(context: context, customVerificationCallback: verifier.verify))
                    } else {
                        try sync.addHandler(NIOSSLServerHandler(context: context))
                    }
                    try FedPipeline.addCommonHandlers(
                        to: sync, maximumFrameSize: configuration.maximumFrameSize,
                        maximumPayloadSize: configuration.maximumPayloadSize, chunkSize: configuration.chunkSize,
                        readTimeout: configuration.readTimeout, heartbeatInterval: configuration.heartbeatInterval,
                        receivePermits: permits, streamBacklog: backlog)
                    try sync.addHandler(ServerSessionHandler(settings: settings, onEstablished: onEstablished))
                }
            }
            .bind(host: host, port: port)
            .get()
        configuration.logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
        channel.closeFuture.whenComplete { _ in continuation.finish() }
        return FederationServer(channel: channel, connections: stream, continuation: continuation)
    }

    /// Stops accepting connections and finishes `connections`. Established sessions stay open
    /// until closed through their `PeerConnection`.
    public func close() async {
        try? await channel.close()
        continuation.finish()
    }
}
