import NIOCore

/// Sends large payloads as chunks and reassembles received ones, between the frame codec and
/// the session logic.
///
/// Outbound, each `Envelope` goes through a `PayloadChunker`; the write's promise completes with
/// the last envelope of the run. The run is paced by the channel's writability: the next chunk
/// is written (and flushed) only while the channel is writable, the rest waits here as views of
/// the payload, so a peer that reads slowly holds about one chunk of this side's memory, not a
/// whole model of encoded frames and ciphertext. Envelopes written meanwhile queue behind the
/// run, in order. A chunk of a `PageCacheBuffer` is read from its file just before it is
/// encoded, never through its mapping. Inbound, each `Envelope` goes through a `PayloadAssembler`;
/// chunks are absorbed and a payload-carrying envelope is passed on only once its payload is
/// complete and verified. A `WireError` from the assembler is fired through `errorCaught`, so
/// the session handler can answer and close. With `ReceivePermits`, a chunked payload is
/// reassembled only while this connection holds a permit: one that finds none free stops
/// reading until it gets one (and is not idle meanwhile: its read-idle events are held back).
/// A payload holding a permit must be complete within `ReceivePermits.timeLimit(forBytes:)`
/// of getting it, or `WireError.transferTooSlow` is fired and the permit handed on.
///
/// With `acceptsStreamedPayloads` (the peer sends in the streamed order, see
/// `WireProtocol.streamedPayloadCapability`), an envelope that announces a chunked payload
/// before its chunks goes up at once, and so does each of its chunks: the application reads
/// them with a `PayloadStream`, and they take no receive permit (they are never held whole).
/// With a `StreamBacklog`, this connection's reads are held while too many chunks handed up
/// wait to be processed.
public final class PayloadChunkingHandler: ChannelDuplexHandler {
    public typealias InboundIn = Envelope
    public typealias InboundOut = Envelope
    public typealias OutboundIn = Envelope
    public typealias OutboundOut = Envelope

    private var chunker: PayloadChunker
    private var assembler: PayloadAssembler
    private var failed = false
    /// Envelopes split but not yet written, oldest first, each with the promise of its write
    /// (on the last envelope of a run).
    private var pending = CircularBuffer<(envelope: Envelope, promise: EventLoopPromise<Void>?)>()
    /// Set while this handler writes: a flush below can make the channel writable again and
    /// call back in (`channelWritabilityChanged`) before the frame in progress is complete, so
    /// a write from there would interleave two frames' bytes. The loop already writing goes on.
    private var writing = false

    /// Bound on payloads reassembled at once, shared with other connections; nil for none.
    private let permits: ReceivePermits?
    private var holdsPermit = false
    /// Set while waiting for a permit; reading is paused and what arrives is parked.
    private var ticket: UInt64?
    private var parked = CircularBuffer<Envelope>()
    private var closed = false
    /// Size the open payload announced in its first chunk.
    private var announcedBytes: UInt64 = 0
    /// Fires when the payload holding the permit has taken longer than its size allows.
    private var transferClock: Scheduled<Void>?
    /// Bound on streamed chunks handed up and not yet processed, shared with other connections.
    public let backlog: StreamBacklog?
    /// Whether envelopes that announce a chunked payload before its chunks are passed up with
    /// their chunks (set once the peer's streamed order was agreed). Call on the event loop.
    public var acceptsStreamedPayloads = false
    /// The streamed transfer whose chunks are passed up, and how many of them are still to come.
    private var streaming: (id: UInt64, remaining: UInt32)?
    /// Set while a read is held back by the backlog.
    private var readHeld = false

    /// Creates the handler.
    /// - Parameters:
    ///   - chunker: Splits outbound payloads.
    ///   - assembler: Reassembles and validates inbound payloads.
    ///   - permits: Shared bound on payloads reassembled at once; nil for no bound.
    ///   - backlog: Shared bound on streamed chunks waiting to be processed; nil for none.
    public init(chunker: PayloadChunker = PayloadChunker(), assembler: PayloadAssembler = PayloadAssembler(),
                permits: ReceivePermits? = nil, backlog: StreamBacklog? = nil) {
        self.chunker = chunker
        self.assembler = assembler
        self.permits = permits
        self.backlog = backlog
    }

    /// Whether this side sends its chunked payloads in the streamed order (envelope first); set
    /// it only once the peer announced `WireProtocol.streamedPayloadCapability`. Call on the
    /// channel's event loop.
    public var streamsOutbound: Bool {
        get { chunker.streamed }
        set { chunker.streamed = newValue }
    }

    /// Checksum of the chunked payloads this handler sends; set it to `.crc32c` only once the
    /// peer announced `WireProtocol.crc32cCapability`. Call on the channel's event loop.
    public var checksum: PayloadChecksum {
        get { chunker.checksum }
        set { chunker.checksum = newValue }
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !failed else { return }
        let envelope = Self.unwrapInboundIn(data)
        if ticket != nil {
            parked.append(envelope)
        } else {
            receive(envelope, context: context)
        }
    }

    /// Passes `envelope` to the assembler, first taking a permit if it starts a chunked
    /// payload; without one free, parks it (at the front: it is the oldest) and stops reading.
    private func receive(_ envelope: Envelope, context: ChannelHandlerContext) {
        if acceptsStreamedPayloads && passStreamed(envelope, context: context) { return }
        if let permits, !holdsPermit, case .chunk(let chunk)? = envelope.body, chunk.index == 0 {
            let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            if let waiting = permits.acquire(on: context.eventLoop, granted: { handler.value.0.granted(context: handler.value.1) }) {
                ticket = waiting
                parked.prepend(envelope)
                context.channel.setOption(ChannelOptions.autoRead, value: false).whenComplete { _ in }
                return
            }
            holdsPermit = true
        }
        if case .chunk(let chunk)? = envelope.body, chunk.index == 0 { announcedBytes = chunk.totalBytes }
        do {
            // A reassembled payload keeps its permit until the last view of its memory is gone
            // (the receiver has used it, e.g. folded an update into an average), not just until
            // it is complete: the bound is on payloads in memory, not only on those arriving.
            var lease: PermitLease?
            if holdsPermit, let permits, case .chunked? = envelope.payload?.content { lease = PermitLease(permits) }
            let complete = try assembler.receive(envelope, owner: lease)
            if holdsPermit && !assembler.hasOpenTransfer {
                if let lease, complete != nil {
                    holdsPermit = false
                    stopTransferClock()
                    lease.armed = true  // released with the payload's memory
                } else {
                    releasePermit()
                }
            } else if holdsPermit && transferClock == nil, let permits {
                startTransferClock(permits.timeLimit(forBytes: announcedBytes), context: context)
            }
            if let complete { context.fireChannelRead(Self.wrapInboundOut(complete)) }
        } catch {
            failed = true  // the connection is unusable: ignore whatever follows
            releasePermit()
            parked.removeAll()
            context.fireErrorCaught(error)
        }
    }

    /// Passes up, as they are, an envelope that announces a chunked payload while no transfer
    /// is being reassembled (the streamed order) and then that transfer's chunks. Returns
    /// whether `envelope` was one of them.
    private func passStreamed(_ envelope: Envelope, context: ChannelHandlerContext) -> Bool {
        if case .chunk(let chunk)? = envelope.body {
            guard let open = streaming, chunk.transferID == open.id else { return false }
            streaming = open.remaining > 1 ? (open.id, open.remaining - 1) : nil
            backlog?.added()
            context.fireChannelRead(Self.wrapInboundOut(envelope))
            return true
        }
        guard case .chunked(let reference)? = envelope.payload?.content, !assembler.hasOpenTransfer else { return false }
        if let open = streaming {
            failed = true
            parked.removeAll()
            context.fireErrorCaught(WireError.unexpectedTransfer(transferID: reference.transferID, openTransferID: open.id))
            return true
        }
        if reference.chunkCount > 0 { streaming = (reference.transferID, reference.chunkCount) }
        context.fireChannelRead(Self.wrapInboundOut(envelope))
        return true
    }

    /// Reads go on only while the streamed chunks handed up (by every connection sharing the
    /// backlog) are few enough; a held read goes on once the application has caught up.
    public func read(context: ChannelHandlerContext) {
        guard let backlog, acceptsStreamedPayloads else {
            context.read()
            return
        }
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let admitted = backlog.admit(on: context.eventLoop) {
            let (this, context) = handler.value
            guard !this.closed else {
                backlog.passOn()
                return
            }
            this.readHeld = false
            context.read()
        }
        if admitted { context.read() } else { readHeld = true }
    }

    /// A permit was handed over: replay what was parked, then read again.
    private func granted(context: ChannelHandlerContext) {
        guard !closed, ticket != nil else {
            permits?.release()  // the connection went away while the permit was on its way
            return
        }
        ticket = nil
        holdsPermit = true
        while ticket == nil, !failed, let next = parked.popFirst() { receive(next, context: context) }
        if ticket == nil && !closed {
            context.channel.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
            context.read()
        }
    }

    private func releasePermit() {
        stopTransferClock()
        guard holdsPermit else { return }
        holdsPermit = false
        permits?.release()
    }

    private func startTransferClock(_ limit: TimeAmount, context: ChannelHandlerContext) {
        let handler = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        transferClock = context.eventLoop.scheduleTask(in: limit) {
            handler.value.0.transferTooSlow(limit: limit, context: handler.value.1)
        }
    }

    private func stopTransferClock() {
        transferClock?.cancel()
        transferClock = nil
    }

    /// The payload holding the permit is overdue: drop it, hand the permit on, and report.
    private func transferTooSlow(limit: TimeAmount, context: ChannelHandlerContext) {
        transferClock = nil
        guard holdsPermit, !failed, !closed, let open = assembler.openTransfer else { return }
        failed = true  // the connection is closed: ignore whatever follows
        assembler.abandon()
        releasePermit()
        parked.removeAll()
        context.fireErrorCaught(WireError.transferTooSlow(transferID: open.id, received: open.received, total: announcedBytes,
                                                          seconds: Double(limit.nanoseconds) / 1e9))
    }

    /// Gives back the permit held or waited for; the connection is gone.
    private func leave() {
        guard !closed else { return }
        closed = true
        releasePermit()
        if let waiting = ticket, let permits, permits.cancel(waiting) { ticket = nil }
        parked.removeAll()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Paused by us, the connection reads nothing on purpose: that is not the peer idling.
        if ticket != nil || readHeld, let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read { return }
        context.fireUserInboundEventTriggered(event)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let envelopes: [Envelope]
        do {
            envelopes = try chunker.split(Self.unwrapOutboundIn(data))
        } catch {
            promise?.fail(error)
            return
        }
        if envelopes.count == 1 && pending.isEmpty {
            writing = true
            defer { writing = false }
            context.write(Self.wrapOutboundOut(envelopes[0]), promise: promise)
            return
        }
        for (i, envelope) in envelopes.enumerated() {
            pending.append((envelope, i == envelopes.count - 1 ? promise : nil))
        }
        writePending(context: context)
    }

    public func flush(context: ChannelHandlerContext) {
        writePending(context: context)
        guard !writing else { return }  // the loop writing flushes each envelope itself
        context.flush()
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { writePending(context: context) }
        context.fireChannelWritabilityChanged()
    }

    /// Closing drops the chunks not yet written at once (their payload may be a view of the
    /// sender's memory, which it may reuse as soon as it learns the send is over), rather
    /// than when the connection has finished closing.
    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        if mode != .input { failPending(ChannelError.ioOnClosedChannel) }
        context.close(mode: mode, promise: promise)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        leave()
        failPending(ChannelError.ioOnClosedChannel)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        leave()
        failPending(ChannelError.ioOnClosedChannel)
        context.fireChannelInactive()
    }

    /// Writes queued envelopes while the channel is writable, flushing each so that what it
    /// costs below (frames, ciphertext, socket buffer) shows in the channel's writability.
    private func writePending(context: ChannelHandlerContext) {
        guard !writing else { return }
        writing = true
        defer { writing = false }
        while context.channel.isWritable, let next = pending.popFirst() {
            var envelope = next.envelope
            // A chunk of a PageCacheBuffer is read from its file just before it is encoded, not
            // through its mapping: a model served to many clients costs no page faults. If the
            // file cannot be read, the send fails and the connection closes (the peer would
            // otherwise wait for the rest of a transfer that cannot come).
            if case .chunk(var chunk)? = envelope.body {
                do {
                    if let copy = try PageCacheBuffer.fileCopy(of: chunk.data) {
                        chunk.data = copy
                        envelope.body = .chunk(chunk)
                    }
                } catch {
                    let failure = WireError.encodingFailed(kind: "chunk", reason: "chunk \(chunk.index) of transfer \(chunk.transferID) could not be read back from the page cache (\(error))")
                    next.promise?.fail(failure)
                    failPending(failure)
                    context.close(promise: nil)
                    return
                }
            }
            context.write(Self.wrapOutboundOut(envelope), promise: next.promise)
            context.flush()
        }
    }

    private func failPending(_ error: any Error) {
        while let next = pending.popFirst() { next.promise?.fail(error) }
    }
}

@available(*, unavailable)
extension PayloadChunkingHandler: Sendable {}

/// A receive permit handed over to a reassembled payload: given back when the payload's
/// memory is released (the lease is kept alive by it), once armed.
final class PermitLease: @unchecked Sendable {
    private let permits: ReceivePermits
    /// Set once the payload exists; a lease dropped before that gives nothing back (the
    /// handler still holds, and releases, the permit itself).
    var armed = false
    init(_ permits: ReceivePermits) { self.permits = permits }
    deinit { if armed { permits.release() } }
}
