import NIOCore

/// Sends large payloads as chunks and reassembles received ones, between the frame codec and
/// the session logic.
///
/// Outbound, each `Envelope` goes through a `PayloadChunker`; the write's promise completes with
/// the last envelope of the run. Inbound, each `Envelope` goes through a `PayloadAssembler`;
/// chunks are absorbed and a payload-carrying envelope is passed on only once its payload is
/// complete and verified. A `WireError` from the assembler is fired through `errorCaught`, so
/// the session handler can answer and close.
public final class PayloadChunkingHandler: ChannelDuplexHandler {
    public typealias InboundIn = Envelope
    public typealias InboundOut = Envelope
    public typealias OutboundIn = Envelope
    public typealias OutboundOut = Envelope

    private var chunker: PayloadChunker
    private var assembler: PayloadAssembler
    private var failed = false

    /// Creates the handler.
    /// - Parameters:
    ///   - chunker: Splits outbound payloads.
    ///   - assembler: Reassembles and validates inbound payloads.
    public init(chunker: PayloadChunker = PayloadChunker(), assembler: PayloadAssembler = PayloadAssembler()) {
        self.chunker = chunker
        self.assembler = assembler
    }

    /// Checksum of the chunked payloads this handler sends; set it to `.crc32c` only once the
    /// peer announced `WireProtocol.crc32cCapability`. Call on the channel's event loop.
    public var checksum: PayloadChecksum {
        get { chunker.checksum }
        set { chunker.checksum = newValue }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        do {
            if let envelope = try assembler.receive(Self.unwrapInboundIn(data)) {
                context.fireChannelRead(Self.wrapInboundOut(envelope))
            }
        } catch {
            failed = true  // the connection is unusable: ignore whatever follows
            context.fireErrorCaught(error)
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let envelopes: [Envelope]
        do {
            envelopes = try chunker.split(Self.unwrapOutboundIn(data))
        } catch {
            promise?.fail(error)
            return
        }
        for (i, envelope) in envelopes.enumerated() {
            context.write(Self.wrapOutboundOut(envelope), promise: i == envelopes.count - 1 ? promise : nil)
        }
    }
}

@available(*, unavailable)
extension PayloadChunkingHandler: Sendable {}
