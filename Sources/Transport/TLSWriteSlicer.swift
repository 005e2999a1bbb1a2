import NIOCore

/// Hands the TLS handler large writes in slices, flushing after each, so that its ciphertext
/// buffer stays small.
///
/// `NIOSSLHandler` encrypts everything written between two flushes into one outbound buffer,
/// and keeps that buffer's capacity for the rest of the connection. A chunked model is written
/// as one run of frames and flushed once, so without slicing every connection that was
/// ever sent a model kept a buffer the size of the model (57 MB for the digit model): the
/// server's memory grew by one model per connected client. Slicing bounds that buffer to about
/// `sliceSize` per connection.
///
/// Sits directly above the TLS handler. A write of at most `sliceSize` bytes passes unchanged;
/// a larger one becomes views of `sliceSize` bytes (no copy), each but the last followed by a
/// flush; the write's promise completes with the last slice. Flushing earlier than the caller
/// asked only sends bytes sooner: ordering and promises are unchanged.
final class TLSWriteSlicer: ChannelOutboundHandler {
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Default largest slice: 64 KiB (256 KiB kept ~13 MB more with 50 clients, for no
    /// measurable throughput; docs/server-memory.md).
    static let defaultSliceSize = 64 << 10

    /// Largest write passed to the TLS handler before a flush.
    let sliceSize: Int

    /// - Parameter sliceSize: Largest slice in bytes, > 0.
    init(sliceSize: Int = TLSWriteSlicer.defaultSliceSize) {
        precondition(sliceSize > 0, "sliceSize must be positive")
        self.sliceSize = sliceSize
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var buffer = Self.unwrapOutboundIn(data)
        while buffer.readableBytes > sliceSize, let slice = buffer.readSlice(length: sliceSize) {
            context.write(Self.wrapOutboundOut(slice), promise: nil)
            context.flush()
        }
        context.write(Self.wrapOutboundOut(buffer), promise: promise)
    }
}

@available(*, unavailable)
extension TLSWriteSlicer: Sendable {}
