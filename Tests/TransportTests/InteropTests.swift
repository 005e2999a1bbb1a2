import Foundation
import NIOCore
import NIOEmbedded
import XCTest
@testable import Transport
@testable import Wire

/// The contract checked against independent implementations: the system's OpenSSL
/// (`openssl s_client`) for mutual TLS, and a C peer built at test time against protobuf-c,
/// its code generated from proto/fed.proto into a temporary folder.
///
/// A missing tool fails the test with the Debian package to install (scripts/setup.sh --test
/// installs them all).
final class InteropTests: XCTestCase {
    // MARK: Processes

    struct Outcome {
        var status: Int32
        var stdout: Data
        var stderr: String
    }

    /// Runs `arguments` with `stdin` fed from a file (or /dev/null), capturing both outputs.
    private func execute(_ arguments: [String], stdin: URL? = nil) throws -> Outcome {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let errFile = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-stderr-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: errFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errFile) }
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: errFile)
        process.standardInput = try stdin.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderrData = (try? Data(contentsOf: errFile)) ?? Data()
        return Outcome(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderrData, as: UTF8.self))
    }

    private func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: url) }
        return url
    }

    private func writeFrames(_ envelopes: [Envelope], to url: URL) throws {
        var bytes = Data()
        let codec = FrameCodec()
        for envelope in envelopes {
            let frame = try codec.encodeFrame(envelope)
            bytes.append(contentsOf: frame.readableBytesView)
        }
        try bytes.write(to: url)
    }

    // MARK: openssl s_client

    private func sClient(port: Int, clientName: String?, input: URL) throws -> Outcome {
        try requireTool("openssl", package: "openssl")
        let pki = try pki()
        var arguments = ["timeout", "30", "openssl", "s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3",
                         "-CAfile", pki.path("ca.crt"), "-servername", "localhost", "-verify_return_error", "-quiet"]
        if let clientName {
            arguments += ["-cert", pki.path("\(clientName).crt"), "-key", pki.path("\(clientName).key")]
        }
        return try execute(arguments, stdin: input)
    }

    func testOpenSSLClientWithCertificateCompletesMutualTLSAndHello() async throws {
        let harness = try await LoopbackIntegrationTests.Harness()
        let directory = try temporaryDirectory()
        let input = directory.appendingPathComponent("hello.bin")
        try writeFrames([
            Envelope(.hello(.with { $0.clientName = "alice"; $0.protocolVersion = 1; $0.dataset.domain = "openssl" })),
            Envelope(.goodbye(.with { $0.reason = "s_client done" })),
        ], to: input)

        let outcome = try sClient(port: harness.server.port, clientName: "alice", input: input)
        var received = ByteBuffer(bytes: outcome.stdout)
        var kinds: [String] = []
        while let envelope = try FrameCodec().decodeFrame(from: &received) { kinds.append(envelope.kind) }
        XCTAssertEqual(kinds.filter { $0 != "heartbeat" }, ["welcome"], "s_client stderr:\n\(outcome.stderr)")
        let session = try await harness.session(named: "alice")
        XCTAssertEqual(session.hello.dataset.domain, "openssl")
        var inbound = session.inbound.makeAsyncIterator()
        let next = try await inbound.next()
        XCTAssertEqual(next?.kind, "goodbye")
        try await harness.assertGoodClientServed()
        await harness.shutdown()
    }

    func testOpenSSLClientWithoutCertificateIsRefused() async throws {
        let harness = try await LoopbackIntegrationTests.Harness()
        let directory = try temporaryDirectory()
        let input = directory.appendingPathComponent("hello.bin")
        try writeFrames([Envelope(.hello(.with { $0.clientName = "alice"; $0.protocolVersion = 1 }))], to: input)

        let outcome = try sClient(port: harness.server.port, clientName: nil, input: input)
        var received = ByteBuffer(bytes: outcome.stdout)
        XCTAssertNil(try? FrameCodec().decodeFrame(from: &received), "a client without certificate got an answer")
        XCTAssertNotEqual(outcome.status, 0)
        XCTAssertTrue(outcome.stderr.contains("certificate required"), "s_client stderr:\n\(outcome.stderr)")
        await harness.assertLoggedRefusal("PEER_DID_NOT_RETURN_A_CERTIFICATE")
        try await harness.assertGoodClientServed()
        await harness.shutdown()
    }

    // MARK: protobuf-c peer

    /// Builds the C peer in a temporary folder and returns its path.
    private func buildCPeer() throws -> URL {
        try requireTool("protoc-c", package: "protobuf-c-compiler")
        try requireTool("gcc", package: "gcc")
        let directory = try temporaryDirectory()
        try runCommand(["protoc-c", "--c_out=\(directory.path)", "-I", repositoryRoot.appendingPathComponent("proto").path,
                 repositoryRoot.appendingPathComponent("proto/fed.proto").path])
        let binary = directory.appendingPathComponent("fed_peer")
        do {
            try runCommand(["gcc", "-std=c11", "-Wall", "-O1", "-I", directory.path, "-o", binary.path,
                     repositoryRoot.appendingPathComponent("Tests/TransportTests/Interop/fed_peer.c").path,
                     directory.appendingPathComponent("fed.pb-c.c").path, "-lprotobuf-c", "-lcrypto"])
        } catch {
            throw MissingTool(name: "the protobuf-c and libcrypto headers and libraries (\(error))", package: "libprotobuf-c-dev libssl-dev")
        }
        return binary
    }

    func testCPeerDecodesEveryFrameTheSwiftEncoderWrites() throws {
        let peer = try buildCPeer()
        let directory = try temporaryDirectory()
        var envelopes = InteropSamples.everyKind()
        var chunker = PayloadChunker(chunkSize: 10_000, inlineLimit: 0, firstTransferID: 5)
        let big = WireTensor(name: "features.0.weight", shape: [64, 3, 5, 5], floats: (0..<4800).map { Float($0) * -0.125 })
        envelopes += try chunker.split(Envelope(.fitRequest(.with { $0.round = 2; $0.parameters = Fedkit_V1_Payload([big]) })))
        chunker.checksum = .crc32c
        envelopes += try chunker.split(Envelope(.fitResult(.with { $0.round = 2; $0.parameters = Fedkit_V1_Payload([big]) })))
        for i in envelopes.indices { envelopes[i].sequence = UInt64(i) }
        let file = directory.appendingPathComponent("swift.bin")
        try writeFrames(envelopes, to: file)

        let outcome = try execute([peer.path, "decode", file.path])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)
        let cLines = String(decoding: outcome.stdout, as: UTF8.self).split(separator: "\n").map(String.init)
        let swiftLines = try InteropSamples.summaries(of: envelopes)
        XCTAssertEqual(cLines.count, swiftLines.count)
        for (c, swift) in zip(cLines, swiftLines) {
            XCTAssertEqual(c, swift)
        }
        XCTAssertTrue(cLines.contains { $0.contains("reassembled=5 sha256=ok tensors=1 features.0.weight:64x3x5x5:1:19200:") })
        XCTAssertTrue(cLines.contains { $0.contains("reassembled=6 crc32c=ok tensors=1 features.0.weight:64x3x5x5:1:19200:") })
    }

    func testSwiftDecoderAcceptsEveryFrameTheCPeerWrites() throws {
        let peer = try buildCPeer()
        let directory = try temporaryDirectory()
        let file = directory.appendingPathComponent("c.bin")
        let outcome = try execute([peer.path, "encode", file.path])
        XCTAssertEqual(outcome.status, 0, outcome.stderr)

        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addFrameCodec()
        try channel.pipeline.syncOperations.addHandler(PayloadChunkingHandler())
        try channel.writeInbound(ByteBuffer(bytes: try Data(contentsOf: file)))
        var received: [Envelope] = []
        while let envelope = try channel.readInbound(as: Envelope.self) { received.append(envelope) }
        XCTAssertEqual(received.map(\.kind), ["hello", "fit_result", "fit_result", "evaluate_result", "heartbeat", "goodbye"])
        XCTAssertEqual(received.map(\.sequence), [0, 1, 5, 6, 7, 8])

        guard case .hello(let hello) = received[0].body else { return XCTFail() }
        XCTAssertEqual(hello.clientName, "c-peer")
        XCTAssertEqual(hello.protocolVersion, 1)
        XCTAssertEqual(hello.capabilities, ["chunked-payload"])
        XCTAssertEqual(hello.dataset.domain, "usps")
        XCTAssertEqual(hello.dataset.trainExamples, 7291)
        XCTAssertEqual(hello.dataset.labelHistogram, Array(1...10))

        guard case .fitResult(let inline) = received[1].body else { return XCTFail() }
        XCTAssertEqual(inline.round, 3)
        XCTAssertEqual(inline.trainLoss, 0.25)
        XCTAssertEqual(inline.wallTimeSeconds, 1.5)
        let small = try inline.parameters.wireTensors()
        XCTAssertEqual(small.map(\.name), ["fc.weight"])
        XCTAssertEqual(small[0].shape, [2, 3])
        XCTAssertEqual(try small[0].floats(), [0, 0.5, 1, 1.5, 2, 2.5])

        guard case .fitResult(let chunked) = received[2].body else { return XCTFail() }
        XCTAssertEqual(chunked.round, 4)
        let big = try chunked.parameters.wireTensors()
        XCTAssertEqual(big.map(\.name), ["big"])
        XCTAssertEqual(try big[0].floats(), (0..<10000).map { Float($0) * 0.25 })

        guard case .evaluateResult(let evaluation) = received[3].body else { return XCTFail() }
        XCTAssertEqual(evaluation.correctPerClass, [90, 80, 70])
        XCTAssertEqual(evaluation.accuracy, 0.8)
        guard case .goodbye(let goodbye) = received[5].body else { return XCTFail() }
        XCTAssertEqual(goodbye.reason, "done")
    }
}

/// Sample envelopes and the one-line summaries the C peer prints for them.
enum InteropSamples {
    static func everyKind() -> [Envelope] {
        let tensors = [
            WireTensor(name: "conv1.weight", shape: [2, 1, 3, 3], floats: (0..<18).map { Float($0) / 7 }),
            WireTensor(name: "conv1.bias", shape: [2], floats: [-0.0, .infinity]),
            try! WireTensor(name: "bn1.num_batches_tracked", shape: [], dtype: .int64, bytes: Data([9, 0, 0, 0, 0, 0, 0, 0])),
        ]
        let bodies: [Envelope.OneOf_Body] = [
            .hello(.with {
                $0.clientName = "svhn-0"; $0.protocolVersion = 1; $0.capabilities = ["chunked-payload", "fedbn"]; $0.softwareVersion = "0.1"
                $0.dataset = .with { $0.domain = "svhn"; $0.trainExamples = 7943; $0.testExamples = 1000; $0.labelHistogram = [5, 0, 7] }
            }),
            .welcome(.with { $0.protocolVersion = 1; $0.capabilities = ["chunked-payload"]; $0.heartbeatIntervalSeconds = 10; $0.softwareVersion = "0.1" }),
            .reject(.with { $0.reason = "protocol version 9 is not supported"; $0.supportedVersions = [1, 2] }),
            .fitRequest(.with {
                $0.round = 12; $0.parameters = Fedkit_V1_Payload(tensors)
                $0.config = .with { $0.epochs = 1; $0.batchSize = 32; $0.learningRate = 0.01; $0.momentum = 0.9; $0.weightDecay = 5e-4; $0.agcLambda = 0.16; $0.fedproxMu = 0.01; $0.seed = 42 }
            }),
            .fitResult(.with { $0.round = 12; $0.parameters = Fedkit_V1_Payload(tensors); $0.numExamples = 7943; $0.trainLoss = 0.31; $0.trainAccuracy = 0.91; $0.wallTimeSeconds = 12.5 }),
            .evaluateRequest(.with { $0.round = 12 }),
            .evaluateResult(.with { $0.round = 12; $0.loss = 0.4; $0.accuracy = 0.88; $0.numExamples = 1000; $0.correctPerClass = [90, 80]; $0.totalPerClass = [100, 100] }),
            .heartbeat(.with { $0.unixMillis = 1_790_000_000_000 }),
            .goodbye(.with { $0.reason = "training finished" }),
            .error(.with { $0.code = .outOfOrder; $0.message = "fit_result before hello" }),
        ]
        return bodies.map { Envelope($0) } + [Envelope()]
    }

    private static func hex<T: BinaryInteger>(_ value: T, width: Int) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }

    private static func fnv1a64(_ data: Data) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in data { hash ^= UInt64(byte); hash = hash &* 0x0000_0100_0000_01b3 }
        return hash
    }

    private static func tensors(_ set: Fedkit_V1_TensorSet) -> String {
        " tensors=\(set.tensors.count)" + set.tensors.map { t in
            let dims = t.shape.isEmpty ? "scalar" : t.shape.map(String.init).joined(separator: "x")
            return " \(t.name):\(dims):\(t.dtype.rawValue):\(t.data.count):\(hex(fnv1a64(t.data), width: 16))"
        }.joined()
    }

    /// One line per envelope, in the C peer's format; chunked payloads are reassembled with
    /// `PayloadAssembler`.
    static func summaries(of envelopes: [Envelope]) throws -> [String] {
        var assembler = PayloadAssembler()
        var lines: [String] = []
        for original in envelopes {
            let assembled = try assembler.receive(original)
            func payload(_ has: Bool, _ p: Fedkit_V1_Payload) -> String {
                guard has else { return " payload=none" }
                switch p.content {
                case .inline(let set)?:
                    if case .chunked(let ref)? = original.payload?.content {
                        return " reassembled=\(ref.transferID) \(ref.sha256.isEmpty ? "crc32c" : "sha256")=ok" + tensors(set)
                    }
                    return " inline" + tensors(set)
                case .chunked?: return " payload=unassembled"
                case nil: return " payload=empty"
                }
            }
            var line = "seq=\(original.sequence)"
            switch (assembled ?? original).body {
            case .hello(let h):
                line += " hello name=\(h.clientName) version=\(h.protocolVersion) caps=\(h.capabilities.joined(separator: ",")) software=\(h.softwareVersion)"
                if h.hasDataset {
                    line += " domain=\(h.dataset.domain) train=\(h.dataset.trainExamples) test=\(h.dataset.testExamples)"
                    line += " histogram=\(h.dataset.labelHistogram.map(String.init).joined(separator: ","))"
                }
            case .welcome(let w):
                line += " welcome version=\(w.protocolVersion) heartbeat=\(w.heartbeatIntervalSeconds) software=\(w.softwareVersion) caps=\(w.capabilities.joined(separator: ","))"
            case .reject(let r):
                line += " reject reason=\(r.reason) versions=\(r.supportedVersions.map(String.init).joined(separator: ","))"
            case .fitRequest(let r):
                line += " fit_request round=\(r.round)"
                if r.hasConfig {
                    let c = r.config
                    line += " epochs=\(c.epochs) batch=\(c.batchSize) lr=\(hex(c.learningRate.bitPattern, width: 8)) momentum=\(hex(c.momentum.bitPattern, width: 8))"
                    line += " wd=\(hex(c.weightDecay.bitPattern, width: 8)) agc=\(hex(c.agcLambda.bitPattern, width: 8)) mu=\(hex(c.fedproxMu.bitPattern, width: 8)) seed=\(c.seed)"
                }
                line += payload(r.hasParameters, r.parameters)
            case .fitResult(let r):
                line += " fit_result round=\(r.round) examples=\(r.numExamples) loss=\(hex(r.trainLoss.bitPattern, width: 8))"
                line += " accuracy=\(hex(r.trainAccuracy.bitPattern, width: 8)) wall=\(hex(r.wallTimeSeconds.bitPattern, width: 16))"
                line += payload(r.hasParameters, r.parameters)
            case .evaluateRequest(let r):
                line += " evaluate_request round=\(r.round)" + payload(r.hasParameters, r.parameters)
            case .evaluateResult(let r):
                line += " evaluate_result round=\(r.round) loss=\(hex(r.loss.bitPattern, width: 8)) accuracy=\(hex(r.accuracy.bitPattern, width: 8)) examples=\(r.numExamples)"
                line += " correct=\(r.correctPerClass.map(String.init).joined(separator: ",")) total=\(r.totalPerClass.map(String.init).joined(separator: ","))"
            case .heartbeat(let h):
                line += " heartbeat millis=\(h.unixMillis)"
            case .goodbye(let g):
                line += " goodbye reason=\(g.reason)"
            case .error(let e):
                line += " error code=\(e.code.rawValue) message=\(e.message)"
            case .chunk(let c):
                line += " chunk id=\(c.transferID) index=\(c.index) bytes=\(c.data.count)"
            case nil:
                line += " empty"
            }
            lines.append(line)
        }
        return lines
    }
}
