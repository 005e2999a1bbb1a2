import Logging
import NIOCore
import NIOSSL
import Wire

/// The handlers of a FedKit connection above TLS, in order:
/// TLS -> TLSWriteSlicer -> PeerIdentityHandler -> IdleStateHandler -> frame codec -> PayloadChunkingHandler -> session.
enum FedPipeline {
    static func addCommonHandlers(to pipeline: ChannelPipeline.SynchronousOperations,
                                  maximumFrameSize: Int, maximumPayloadSize: Int, chunkSize: Int,
                                  readTimeout: TimeAmount, heartbeatInterval: TimeAmount,
                                  receivePermits: ReceivePermits? = nil, streamBacklog: StreamBacklog? = nil) throws {
        try pipeline.addHandler(TLSWriteSlicer())
        try pipeline.addHandler(PeerIdentityHandler())
        try pipeline.addHandler(IdleStateHandler(readTimeout: readTimeout, writeTimeout: heartbeatInterval))
        try pipeline.addFrameCodec(maximumFrameSize: maximumFrameSize)
        // Chunks must fit a frame with room for the envelope around them.
        let chunk = min(chunkSize, max(1, maximumFrameSize - 64))
        try pipeline.addHandler(PayloadChunkingHandler(
            chunker: PayloadChunker(chunkSize: chunk, inlineLimit: min(PayloadChunker.defaultInlineLimit, chunk)),
            assembler: PayloadAssembler(maximumPayloadSize: maximumPayloadSize),
            permits: receivePermits, backlog: streamBacklog))
    }
}
