import Logging
import NIOCore
import NIOSSL
import Wire

/// How a `FederationServer` listens, authenticates and times out its clients.
///
/// Build one with `mutualTLS(credentials:)`, which has safe defaults (TLS 1.3, client
/// certificate required), then adjust fields.
public struct ServerConfiguration: Sendable {
    /// TLS settings; by default TLS 1.3 with a required client certificate from the federation CA.
    public var tls: TLSConfiguration
    /// Client names (certificate common names) allowed to connect; `nil` allows every client
    /// whose certificate the federation CA signed.
    public var allowedClients: Set<String>?
    /// Largest frame body accepted or sent, in bytes.
    public var maximumFrameSize: Int
    /// Largest reassembled chunked payload accepted, in bytes.
    public var maximumPayloadSize: Int
    /// Bytes per chunk for payloads sent to clients.
    public var chunkSize: Int
    /// Chunked payloads (clients' updates) reassembled at once across all connections; `nil`
    /// for no bound. Each costs its full size until complete; a connection whose next payload
    /// finds the bound reached stops reading until another completes. Bounds the server's
    /// memory when many clients answer at once, at the price of serializing their uploads
    /// beyond the bound (see `concurrentReceives(within:payloadBytes:)` for a default).
    public var maximumConcurrentReceives: Int? = nil
    /// With `maximumConcurrentReceives`: the slowest pace, in bytes per second, of an update
    /// holding a receive slot. One that is not complete within `receiveGrace` plus its size over this
    /// rate is dropped and its connection closed (the client reconnects), so that clients
    /// sending slowly cannot keep the others' updates waiting.
    public var minimumReceiveRate: Int = ReceivePermits.defaultMinimumRate
    /// With `maximumConcurrentReceives`: the time an update holding a receive slot has on top
    /// of its size over `minimumReceiveRate`.
    public var receiveGrace: TimeAmount = ReceivePermits.defaultGrace
    /// A connection from which nothing is read for this long is closed (covers silent peers,
    /// stalled handshakes and truncated frames).
    public var readTimeout: TimeAmount
    /// Send a heartbeat when nothing was written for this long; also announced in Welcome.
    public var heartbeatInterval: TimeAmount
    /// Protocol versions accepted in Hello.
    public var supportedVersions: [UInt32]
    /// Capabilities announced in Welcome.
    public var capabilities: [String]
    /// With `WireProtocol.streamedPayloadCapability` in `capabilities`: the streamed chunks that
    /// may wait, all connections together, for the application to process them
    /// (`StreamBacklog`); a connection reads no further chunk while that many wait.
    public var streamBacklog: Int = StreamBacklog.defaultLimit
    /// Where connection events and refusals are logged.
    public var logger: Logger

    /// Memory for updates being received at once that a server gets by default: 1 GiB.
    public static let defaultReceiveBudget = 1 << 30

    /// How many payloads of `payloadBytes` fit in `budget` bytes, at least one: a bound on
    /// updates received at once that keeps their memory within the budget whatever the
    /// number of clients, and lets as many uploads run side by side as the budget allows
    /// (18 of the 57 MB digit model in 1 GiB).
    public static func concurrentReceives(within budget: Int = defaultReceiveBudget, payloadBytes: Int) -> Int {
        max(1, budget / max(payloadBytes, 1))
    }

    /// A mutual-TLS configuration with safe defaults.
    /// - Parameters:
    ///   - credentials: The server's certificate, key and the federation CA.
    ///   - allowedClients: Names allowed to connect; `nil` for any CA-signed client.
    public static func mutualTLS(credentials: Credentials, allowedClients: Set<String>? = nil) -> ServerConfiguration {
        ServerConfiguration(
            tls: credentials.makeServerTLS(),
            allowedClients: allowedClients,
            maximumFrameSize: FrameCodec.defaultMaximumFrameSize,
            maximumPayloadSize: PayloadAssembler.defaultMaximumPayloadSize,
            chunkSize: PayloadChunker.defaultChunkSize,
            readTimeout: .seconds(30),
            heartbeatInterval: .seconds(10),
            supportedVersions: WireProtocol.supportedVersions,
            capabilities: WireProtocol.capabilities,
            logger: Logger(label: "fedkit.transport.server"))
    }
}

/// How a client dials a `FederationServer` and introduces itself.
///
/// Build one with `mutualTLS(credentials:hello:)`, then adjust fields.
public struct ClientConfiguration: Sendable {
    /// TLS settings; by default TLS 1.3, our certificate presented, the server's fully verified.
    public var tls: TLSConfiguration
    /// The Hello sent after the handshake; its `clientName` must equal our certificate's name.
    public var hello: Fedkit_V1_Hello
    /// Name the server's certificate must carry; `nil` uses the host dialled (IP or DNS name).
    public var serverHostname: String?
    /// Largest frame body accepted or sent, in bytes.
    public var maximumFrameSize: Int
    /// Largest reassembled chunked payload accepted, in bytes.
    public var maximumPayloadSize: Int
    /// Bytes per chunk for payloads sent to the server.
    public var chunkSize: Int
    /// Close the connection when nothing is read for this long.
    public var readTimeout: TimeAmount
    /// Send a heartbeat when nothing was written for this long.
    public var heartbeatInterval: TimeAmount
    /// Time allowed for TCP connect.
    public var connectTimeout: TimeAmount
    /// Where connection events are logged.
    public var logger: Logger

    /// A mutual-TLS configuration with safe defaults.
    /// - Parameters:
    ///   - credentials: The client's certificate, key and the federation CA.
    ///   - hello: What to introduce ourselves with; `protocolVersion` 0 is replaced by the current version.
    public static func mutualTLS(credentials: Credentials, hello: Fedkit_V1_Hello) -> ClientConfiguration {
        var hello = hello
        if hello.protocolVersion == 0 { hello.protocolVersion = WireProtocol.currentVersion }
        if hello.capabilities.isEmpty { hello.capabilities = WireProtocol.capabilities }
        return ClientConfiguration(
            tls: credentials.makeClientTLS(),
            hello: hello,
            serverHostname: nil,
            maximumFrameSize: FrameCodec.defaultMaximumFrameSize,
            maximumPayloadSize: PayloadAssembler.defaultMaximumPayloadSize,
            chunkSize: PayloadChunker.defaultChunkSize,
            readTimeout: .seconds(30),
            heartbeatInterval: .seconds(10),
            connectTimeout: .seconds(10),
            logger: Logger(label: "fedkit.transport.client"))
    }
}
