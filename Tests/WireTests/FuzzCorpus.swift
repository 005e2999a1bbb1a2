import Foundation
import Tensor
import FuzzCorpusStore
import NIOCore
@testable import Wire

/// The generator of the committed fuzz corpus's `frames/` files (files and time budget:
/// `FuzzCorpusStore`).
///
/// A file's name states its expected verdict un-mutated:
/// `ok-…` decodes into envelopes through the frame codec and the chunk reassembly;
/// `frame-error-<case>-…` makes the frame decoder throw `WireError.<case>`
/// (`truncatedFrame`: the decoder waits for more bytes, and the channel throws at its end);
/// `stream-error-<case>-…` decodes frame by frame, and the chunk reassembly throws `WireError.<case>`.
enum FuzzCorpus {
    /// The name of a `WireError` case, e.g. `frameTooLarge`.
    static func caseName(_ error: WireError) -> String {
        Mirror(reflecting: error).children.first?.label ?? "\(error)"
    }

    // MARK: The frames/ files

    static let maximumFrameSize = 64 << 10

    /// The `frames/` files, deterministically.
    static func frames() throws -> [(name: String, bytes: [UInt8])] {
        let codec = FrameCodec(maximumFrameSize: maximumFrameSize)
        func frame(_ e: Envelope) throws -> [UInt8] { Array(try codec.encodeFrame(e).readableBytesView) }
        var files: [(String, [UInt8])] = []
        for envelope in Samples.everyKind() {
            if case .chunk = envelope.body {
                // Chunk 3 of a transfer never opened: a frame the reassembly refuses.
                files.append(("stream-error-chunkOutOfOrder-lone-chunk-3.bin", try frame(envelope)))
            } else {
                files.append(("ok-\(envelope.kind).bin", try frame(envelope)))
            }
        }
        // A FitResult whose payload goes as chunks, with each checksum.
        let fitResult = Samples.everyKind().first { if case .fitResult = $0.body { true } else { false } }!
        func chunked(_ checksum: PayloadChecksum, transfer: UInt64 = 1) throws -> [Envelope] {
            var chunker = PayloadChunker(chunkSize: 200, inlineLimit: 0, checksum: checksum, firstTransferID: transfer)
            return try chunker.split(fitResult)
        }
        let sha = try chunked(.sha256)
        precondition(sha.count == 4, "expected 3 chunks and the result")
        files.append(("ok-chunked-fit-result-sha256.bin", try sha.flatMap(frame)))
        files.append(("ok-chunked-fit-result-crc32c.bin", try chunked(.crc32c).flatMap(frame)))
        files.append(("ok-heartbeat-then-hello.bin", try frame(Samples.everyKind()[7]) + frame(Samples.everyKind()[0])))

        // Refused by the frame decoder.
        files.append(("frame-error-frameTooLarge-1MiB-header.bin", withUnsafeBytes(of: UInt32(1 << 20).bigEndian, Array.init) + [0x08, 0x01]))
        files.append(("frame-error-frameTooLarge-all-ones-header.bin", [0xFF, 0xFF, 0xFF, 0xFF]))
        files.append(("frame-error-invalidEnvelope-garbage-body.bin", [0, 0, 0, 8] + [UInt8](repeating: 0xFF, count: 8)))
        files.append(("frame-error-invalidEnvelope-truncated-varint.bin", [0, 0, 0, 2, 0x08, 0x80]))
        let hello = try frame(Samples.everyKind()[0])
        files.append(("frame-error-truncatedFrame-hello-minus-3.bin", Array(hello.dropLast(3))))

        // Frames that decode, refused by the chunk reassembly.
        var flipped = sha
        if case .chunk(var c) = flipped[1].body { c.data[c.data.startIndex] ^= 0x01; flipped[1] = Envelope(.chunk(c)) }
        files.append(("stream-error-checksumMismatch-flipped-chunk-byte.bin", try flipped.flatMap(frame)))
        var crcFlipped = try chunked(.crc32c)
        if case .chunk(var c) = crcFlipped[2].body { c.data[c.data.startIndex] ^= 0x80; crcFlipped[2] = Envelope(.chunk(c)) }
        files.append(("stream-error-crc32cMismatch-flipped-chunk-byte.bin", try crcFlipped.flatMap(frame)))
        files.append(("stream-error-chunkOutOfOrder-swapped-chunks.bin", try [sha[0], sha[2], sha[1], sha[3]].flatMap(frame)))
        files.append(("stream-error-missingChunks-last-chunk-dropped.bin", try [sha[0], sha[1], sha[3]].flatMap(frame)))
        files.append(("stream-error-unexpectedTransfer-interleaved.bin", try [sha[0], try chunked(.sha256, transfer: 2)[0]].flatMap(frame)))
        var unchecked = sha
        unchecked[3].payload?.chunked.sha256 = Data()
        files.append(("stream-error-missingChecksum.bin", try unchecked.flatMap(frame)))
        var oversized = sha
        oversized[3].payload?.chunked.totalBytes += 1
        files.append(("stream-error-payloadSizeMismatch.bin", try oversized.flatMap(frame)))
        return files
    }
}

/// Edits of a frame: the seeds of the fuzz loops are mutated with these.
enum FrameMutator {
    static func mutate(_ frame: [UInt8], rng: inout SplitMix64) -> [UInt8] {
        var bytes = frame
        guard bytes.count >= 4 else { return bytes + (0..<Int(rng.next() % 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) } }
        switch rng.next() % 6 {
        case 0:  // flip a few bits anywhere
            for _ in 0..<(1 + Int(rng.next() % 4)) where !bytes.isEmpty {
                bytes[Int(rng.next() % UInt64(bytes.count))] ^= UInt8(1 << (rng.next() % 8))
            }
        case 1:  // overwrite a byte of the body with an extreme value
            if bytes.count > 4 { bytes[4 + Int(rng.next() % UInt64(bytes.count - 4))] = [0x00, 0xFF, 0x80, 0x7F][Int(rng.next() % 4)] }
        case 2:  // truncate the body but keep the header
            bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
        case 3:  // random garbage of random length behind a truthful header
            let n = Int(rng.next() % 512)
            bytes = withUnsafeBytes(of: UInt32(n).bigEndian, Array.init) + (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 4:  // random header
            let length = UInt32(truncatingIfNeeded: rng.next())
            withUnsafeBytes(of: length.bigEndian) { for i in 0..<4 { bytes[i] = $0[i] } }
        default:  // insert random bytes into the body
            let at = 4 + Int(rng.next() % UInt64(max(bytes.count - 3, 1)))
            bytes.insert(contentsOf: (0..<Int(1 + rng.next() % 8)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: min(at, bytes.count))
        }
        return bytes
    }
}
