import NIOCore
import NIOHTTP1
import NIOPosix

/// A small plain-HTTP listener for monitoring: `GET` a path, get the text a route makes for
/// it (a Prometheus scrape, a health probe). One request per connection; anything but a
/// `GET` of a known path gets 405 or 404, a request that is not HTTP gets 400 and is closed.
/// It carries no model data and takes no input, so it is separate from the TLS listener;
/// bind it to a loopback or cluster-internal address.
public final class StatusEndpoint: Sendable {
    /// What a route answers.
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: String

        public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }
    }

    private let channel: Channel

    private init(channel: Channel) { self.channel = channel }

    /// The port the endpoint listens on (useful after binding port 0).
    public var port: Int { channel.localAddress?.port ?? 0 }

    /// Starts listening.
    /// - Parameters:
    ///   - routes: the response for a path (without its query), or nil for 404. Called on an
    ///     event loop: keep it quick.
    /// - Throws: when the address cannot be bound.
    public static func start(host: String, port: Int, group: EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                             routes: @escaping @Sendable (String) -> Response?) async throws -> StatusEndpoint {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    // A request must arrive within 10 s: a connection that sends nothing is closed.
                    try sync.addHandler(IdleStateHandler(readTimeout: .seconds(10)))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(StatusHTTPHandler(routes: routes))
                }
            }
            .bind(host: host, port: port)
            .get()
        return StatusEndpoint(channel: channel)
    }

    /// Stops listening.
    public func close() async {
        try? await channel.close()
    }
}

/// Answers one request, then closes the connection.
final class StatusHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: @Sendable (String) -> StatusEndpoint.Response?
    private var request: HTTPRequestHead?

    init(routes: @escaping @Sendable (String) -> StatusEndpoint.Response?) { self.routes = routes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): request = head
        case .body: break  // nothing takes a body
        case .end:
            guard let head = request else { return }
            request = nil
            respond(to: head, context: context)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = String(head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        let response: StatusEndpoint.Response
        if head.method != .GET && head.method != .HEAD {
            response = .init(status: 405, body: "only GET is served\n")
        } else if let routed = routes(path) {
            response = routed
        } else {
            response = .init(status: 404, body: "no such path: \(path)\n")
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: String(response.body.utf8.count))
        headers.add(name: "Connection", value: "close")
        let status = HTTPResponseStatus(statusCode: response.status)
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
        if head.method != .HEAD {
            var buffer = context.channel.allocator.buffer(capacity: response.body.utf8.count)
            buffer.writeString(response.body)
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        let channel = context.channel
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil); return }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension StatusHTTPHandler: Sendable {}
