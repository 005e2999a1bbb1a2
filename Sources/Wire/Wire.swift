// Wire: FedKit's protobuf contract (`proto/fed.proto`, generated into
// `fed.pb.swift`), length-prefixed framing with a hard size limit, tensor <->
// protobuf conversion and chunked transfer of large tensor sets.
//
// Knows nothing of sockets (see Transport) or of training (see Federated).

import SwiftProtobuf

/// One frame's message: exactly one body among Hello, Welcome, Reject, FitRequest, FitResult,
/// EvaluateRequest, EvaluateResult, Heartbeat, Goodbye, Error and PayloadChunk.
public typealias Envelope = Fedkit_V1_Envelope

/// Element type of a tensor's raw little-endian bytes.
public typealias DType = Fedkit_V1_DType

/// Versions and capability names of the wire protocol this build speaks.
public enum WireProtocol {
    /// The protocol version described by `proto/fed.proto` (package `fedkit.v1`).
    public static let currentVersion: UInt32 = 1
    /// Every protocol version this build can speak; a peer announcing another gets a `Reject`.
    public static let supportedVersions: [UInt32] = [1]
    /// Capability announced by peers that send and accept chunked payloads.
    public static let chunkedPayloadCapability = "chunked-payload"
    /// Capability announced by peers that accept and may send CRC-32C instead of SHA-256 as
    /// the checksum of chunked payloads. Not announced by default.
    public static let crc32cCapability = "crc32c-checksum"
    /// Capability of a client that sends, and a server that accepts, chunked payloads in the
    /// streamed order: the envelope first, then its chunks, so that the server folds an update
    /// as it arrives instead of holding it whole. Announced by FedKit's clients, and by a
    /// coordinator's server (not by default: a server must then handle `PayloadChunk`
    /// envelopes itself, see `PayloadStream`).
    public static let streamedPayloadCapability = "streamed-payload"
    /// Capabilities this build announces by default.
    public static let capabilities: [String] = [chunkedPayloadCapability]
}

extension Envelope {
    /// Creates an envelope holding `body`.
    public init(_ body: OneOf_Body) {
        self.init()
        self.body = body
    }

    /// Short name of the body's kind, for logs and errors: `"hello"`, `"fit_result"`, `"empty"`.
    public var kind: String {
        switch body {
        case .none: return "empty"
        case .hello: return "hello"
        case .welcome: return "welcome"
        case .reject: return "reject"
        case .fitRequest: return "fit_request"
        case .fitResult: return "fit_result"
        case .evaluateRequest: return "evaluate_request"
        case .evaluateResult: return "evaluate_result"
        case .heartbeat: return "heartbeat"
        case .goodbye: return "goodbye"
        case .error: return "error"
        case .chunk: return "chunk"
        }
    }
}
