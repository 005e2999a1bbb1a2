import Foundation
import NIOCore
import NIOPosix
import NIOSSL
@testable import Transport
@testable import Wire

/// A deliberately misbehaving peer: connects (with or without TLS), writes whatever bytes a
/// test wants and records everything it receives until the server closes the connection.
final class RawPeer: @unchecked Sendable {
    private let channel: Channel
    private let received: Received

    final class Received: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let lock = NSLock()
        var bytes = ByteBuffer()
        var error: Error?
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = Self.unwrapInboundIn(data)
            lock.lock(); bytes.writeBuffer(&buffer); lock.unlock()
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            lock.lock(); self.error = error; lock.unlock()
            context.close(promise: nil)
        }
    }

    private init(channel: Channel, received: Received) {
        self.channel = channel
        self.received = received
    }

    /// Connects over TLS with `credentials` (nil: plaintext TCP).
    static func connect(port: Int, credentials: Credentials?) async throws -> RawPeer {
        let received = Received()
        let context = try credentials.map { try NIOSSLContext(configuration: $0.makeClientTLS()) }
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let handshake = loop.makePromise(of: Void.self)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let context {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: "localhost"))
                        try channel.pipeline.syncOperations.addHandler(HandshakeWaiter(promise: handshake))
                    } else {
                        handshake.succeed(())
                    }
                    try channel.pipeline.syncOperations.addHandler(received)
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await handshake.futureResult.get()
        return RawPeer(channel: channel, received: received)
    }

    final class HandshakeWaiter: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = ByteBuffer
        let promise: EventLoopPromise<Void>
        init(promise: EventLoopPromise<Void>) { self.promise = promise }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            promise.succeed(())
            context.fireUserInboundEventTriggered(event)
        }
        func errorCaught(context: ChannelHandlerContext, error: Error) {
            promise.fail(error)
            context.fireErrorCaught(error)
        }
        func channelInactive(context: ChannelHandlerContext) {
            promise.fail(ChannelError.ioOnClosedChannel)
            context.fireChannelInactive()
        }
    }

    func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func send(_ envelope: Envelope) async throws {
        var frame = try FrameCodec().encodeFrame(envelope)
        try await channel.writeAndFlush(frame.readSlice(length: frame.readableBytes)!)
    }

    /// Waits (at most `timeout`) for the server to close; returns whether it did.
    func waitForClose(timeout: TimeAmount = .seconds(20)) async -> Bool {
        let closed = channel.eventLoop.makePromise(of: Bool.self)
        channel.closeFuture.whenComplete { _ in closed.succeed(true) }
        channel.eventLoop.scheduleTask(in: timeout) { closed.succeed(false) }
        let result = (try? await closed.futureResult.get()) ?? false
        if !result { try? await channel.close() }
        return result
    }

    /// Envelopes received so far, decoded from the raw bytes.
    func receivedEnvelopes() throws -> [Envelope] {
        received.lock.lock()
        var bytes = received.bytes
        received.lock.unlock()
        var out: [Envelope] = []
        while let envelope = try FrameCodec().decodeFrame(from: &bytes) { out.append(envelope) }
        return out
    }

    /// Waits until an envelope matching `predicate` arrived.
    func waitForEnvelope(timeout: TimeAmount = .seconds(10), _ predicate: (Envelope) -> Bool) async throws -> Envelope? {
        let deadline = NIODeadline.now() + timeout
        while NIODeadline.now() < deadline {
            if let match = try receivedEnvelopes().first(where: predicate) { return match }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        return nil
    }

    /// Stops reading from the socket: what the server sends piles up in the kernel's buffers
    /// until they are full, as with a peer that hangs or whose network drops every packet.
    func stopReading() async throws {
        try await channel.setOption(ChannelOptions.autoRead, value: false)
    }

    func close() async { try? await channel.close() }
}
