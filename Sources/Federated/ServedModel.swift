import Foundation
import NN
import Tensor
import Wire

/// The global model's shared tensors while a round's clients are sent them and their updates
/// are folded: kept in the page cache (`PageCacheBuffer`), read from there by every send, while
/// the model's own memory is given back (its tensors read as zero meanwhile).
///
/// The server then holds the running sums, not the sums and the model: the page cache keeps
/// the model, and can write it to disk and reuse the memory when memory is short. Chunked
/// sends read it from the file, not through the mapping. The model's tensors get their values back from the
/// round's average (`WeightedAverage.writeAverage`), or from here (`restore`) when the round
/// ends without one.
final class ServedModel {
    private let buffer: PageCacheBuffer
    private let entries: [StateEntry]

    /// Moves `model`'s tensors that `include` selects into the page cache.
    /// - Throws: `UnnamedFile.IOError` when they cannot be written to an unnamed file in
    ///   `directory` (a full disk); the model is then untouched.
    init(_ model: Model, where include: (StateEntry) -> Bool, directory: String) throws {
        entries = model.entries.filter(include)
        buffer = try PageCacheBuffer(directory: directory, contents: entries.map {
            UnsafeRawBufferPointer(start: $0.value.data, count: $0.value.count * 4)
        })
        for e in entries { e.value.zeroReleasingMemory() }
    }

    /// Whether the model's memory would be saved by moving it to `directory`.
    static func saves(in directory: String) -> Bool { !UnnamedFile.isMemoryBacked(directory) }

    /// The tensors as wire tensors read through the page cache (no copy; they keep it alive).
    func wireTensors() -> [WireTensor] {
        entries.enumerated().map { i, e in
            try! WireTensor(name: e.name, shape: e.value.shape, dtype: .float32, bytes: buffer.data(i))
        }
    }

    /// Puts the values back into the model's tensors.
    /// - Throws: `UnnamedFile.IOError` when the file cannot be read back.
    func restore() throws {
        for (i, e) in entries.enumerated() { try buffer.copy(i, into: e.value.data) }
    }

    /// Drops every page of it this process still maps (an unchunked send reads its mapping).
    func releasePages() { buffer.releaseAll() }
}
