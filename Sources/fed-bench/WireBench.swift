import ArgumentParser
import Crypto
import Foundation
import Logging
import NIOCore
import Transport
import Wire

/// `fed-bench wire`: throughput of FedKit's wire path on a digit-model-sized payload
/// (14.2 M float32 parameters, 56.9 MB).
///
/// * `memcpy`: one copy of the payload, the ceiling for reference.
/// * `sha256`: one SHA-256 pass over the payload (the chunked-transfer checksum; encoding and
///   decoding each make one).
/// * `encode`: tensors -> chunk envelopes (serialize, SHA-256) -> length-prefixed frames.
/// * `decode`: frames -> envelopes -> reassembly, size and SHA-256 checks -> validated tensors.
/// * `crc32c`: one CRC-32C pass, the optional faster checksum.
/// * `encode_decode`: payload bytes / (encode time + decode time).
/// * `tls_loopback`: whole models sent server -> client through `FederationServer` /
///   `FederationClient` over TLS 1.3 on 127.0.0.1, reassembled and verified on arrival.
/// * `*_crc32c`: the same with CRC-32C instead of SHA-256 (both peers announce
///   `crc32c-checksum`).
///
/// Every figure is the best of `--repeats` runs, in MB/s with MB = 10^6 bytes.
struct WireBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "Encode/decode and TLS loopback throughput of a digit-model-sized payload.")

    @Flag(name: .long, help: "Print one JSON object per line instead of a table.")
    var json = false

    @Option(name: .long, help: "Runs per measurement; the best is reported.")
    var repeats = 5

    @Option(name: .long, help: "Models sent per TLS loopback run.")
    var models = 4

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats (\(repeats)) must be at least 1") }
        guard models >= 1 else { throw ValidationError("--models (\(models)) must be at least 1") }
    }

    func run() async throws {
        let tensors = Self.digitModel()
        let bytes = tensors.reduce(0) { $0 + $1.bytes.count }
        let envelope = Envelope(.fitRequest(.with { $0.round = 1; $0.parameters = Fedkit_V1_Payload(tensors) }))

        // memcpy reference.
        let source = tensors.max { $0.bytes.count < $1.bytes.count }!.bytes
        var destination = Data(count: source.count)
        let memcpy = try best { () -> Int in
            destination.withUnsafeMutableBytes { d in source.withUnsafeBytes { s in d.copyMemory(from: s) } }
            return source.count
        }
        report("memcpy", bytes: source.count, seconds: memcpy)

        // SHA-256 of the whole payload: computed once when encoding and once when decoding.
        let sha256 = try best { () -> Int in
            var hasher = SHA256()
            for tensor in tensors { hasher.update(data: tensor.bytes) }
            return hasher.finalize().description.count
        }
        report("sha256", bytes: bytes, seconds: sha256)

        var crc = CRC32C()
        let crc32c = try best { () -> Int in
            crc = CRC32C()
            for tensor in tensors { crc.update(tensor.bytes) }
            return Int(crc.value)
        }
        report("crc32c", bytes: bytes, seconds: crc32c)

        // Encode and decode, with each checksum; the default (SHA-256) has no suffix.
        for checksum in PayloadChecksum.allCases {
            let suffix = checksum == .sha256 ? "" : "_\(checksum.rawValue)"
            let codec = FrameCodec()
            var frames: [ByteBuffer] = []
            let encode = try best { () -> Int in
                var chunker = PayloadChunker(checksum: checksum)
                frames = try chunker.split(envelope).map { try codec.encodeFrame($0) }
                return frames.count
            }
            let decode = try best { () -> Int in
                var assembler = PayloadAssembler()
                var result: [WireTensor] = []
                for frame in frames {
                    var buffer = frame
                    guard let decoded = try codec.decodeFrame(from: &buffer), let envelope = try assembler.receive(decoded) else { continue }
                    result = try envelope.payload?.wireTensors() ?? []
                }
                precondition(result.count == tensors.count && result.last?.bytes == tensors.last?.bytes, "decoded payload differs")
                return result.count
            }
            report("encode" + suffix, bytes: bytes, seconds: encode)
            report("decode" + suffix, bytes: bytes, seconds: decode)
            report("encode_decode" + suffix, bytes: bytes, seconds: encode + decode)
        }

        // TLS loopback.
        for checksum in PayloadChecksum.allCases {
            let suffix = checksum == .sha256 ? "" : "_\(checksum.rawValue)"
            let seconds = try await tlsLoopback(envelope: envelope, tensors: tensors, checksum: checksum)
            report("tls_loopback" + suffix, bytes: bytes * models, seconds: seconds)
        }
    }

    /// The FedBN digit CNN's parameter shapes: 14,213,578 floats.
    static func digitModel() -> [WireTensor] {
        let shapes: [(String, [Int])] = [
            ("conv1.weight", [64, 3, 5, 5]), ("conv1.bias", [64]),
            ("conv2.weight", [64, 64, 5, 5]), ("conv2.bias", [64]),
            ("conv3.weight", [128, 64, 5, 5]), ("conv3.bias", [128]),
            ("fc1.weight", [2048, 6272]), ("fc1.bias", [2048]),
            ("fc2.weight", [512, 2048]), ("fc2.bias", [512]),
            ("fc3.weight", [10, 512]), ("fc3.bias", [10]),
        ]
        var seed: UInt32 = 2463534242
        return shapes.map { name, shape in
            let count = shape.reduce(1, *)
            var floats = [Float](repeating: 0, count: count)
            for i in 0..<count {
                seed ^= seed << 13; seed ^= seed >> 17; seed ^= seed << 5
                floats[i] = Float(Int32(bitPattern: seed)) * 1e-10
            }
            return WireTensor(name: name, shape: shape, floats: floats)
        }
    }

    private func best(_ body: () throws -> Int) throws -> Double {
        var fastest = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try body()
            fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return fastest
    }

    private func tlsLoopback(envelope: Envelope, tensors: [WireTensor], checksum: PayloadChecksum) async throws -> Double {
        let federation = try EphemeralFederation.make(clientNames: ["bench"])
        let quiet = Logger(label: "fed-bench") { _ in SwiftLogNoOpLogHandler() }
        var serverConfiguration = ServerConfiguration.mutualTLS(credentials: federation.server, allowedClients: ["bench"])
        serverConfiguration.logger = quiet
        var capabilities = WireProtocol.capabilities
        if checksum == .crc32c { capabilities.append(WireProtocol.crc32cCapability) }
        serverConfiguration.capabilities = capabilities
        let server = try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: serverConfiguration)
        var clientConfiguration = ClientConfiguration.mutualTLS(credentials: federation.clients["bench"]!,
                                                                hello: .with { $0.clientName = "bench"; $0.capabilities = capabilities })
        clientConfiguration.serverHostname = "localhost"
        clientConfiguration.logger = quiet
        let client = try await FederationClient.connect(host: "127.0.0.1", port: server.port, configuration: clientConfiguration)
        var sessions = server.connections.makeAsyncIterator()
        guard let session = await sessions.next() else { throw ValidationError("server produced no session") }
        precondition(client.welcome.capabilities.contains(WireProtocol.crc32cCapability) == (checksum == .crc32c), "checksum not negotiated")
        var inbound = client.inbound.makeAsyncIterator()
        let expected = tensors.last!.bytes

        var fastest = Double.infinity
        for _ in 0..<repeats {
            let start = DispatchTime.now().uptimeNanoseconds
            let sender = Task {
                for _ in 0..<models { try await session.send(envelope) }
            }
            for _ in 0..<models {
                guard let received = try await inbound.next(), let payload = received.payload else {
                    throw ValidationError("connection ended during the TLS benchmark")
                }
                let arrived = try payload.wireTensors()
                precondition(arrived.last?.bytes == expected, "TLS payload differs")
            }
            try await sender.value
            fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        await client.close()
        await session.close()
        await server.close()
        return fastest
    }

    private func report(_ bench: String, bytes: Int, seconds: Double) {
        let mbPerSecond = Double(bytes) / 1e6 / seconds
        if json {
            print(#"{"bench":"\#(bench)","mb_per_s":\#(String(format: "%.1f", mbPerSecond)),"bytes":\#(bytes),"seconds":\#(String(format: "%.6f", seconds))}"#)
        } else {
            print("\(bench.padding(toLength: 21, withPad: " ", startingAt: 0)) \(String(format: "%9.1f", mbPerSecond)) MB/s  (\(bytes) bytes in \(String(format: "%.4f", seconds)) s)")
        }
    }
}
