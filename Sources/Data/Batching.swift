// Normalization, seeded shuffling and batch iteration. A batch is gathered from
// the dataset's bytes straight into a caller-owned Float buffer that is reused from
// batch to batch: an epoch never copies the dataset.

import Tensor

/// Per-channel normalization `x = (pixel / 255 − mean[c]) / std[c]`.
public struct Normalization: Sendable, Equatable {
    /// Mean per channel, on the [0, 1] pixel scale.
    public var mean: [Float]
    /// Standard deviation per channel, on the [0, 1] pixel scale.
    public var std: [Float]

    /// A normalization with the given per-channel values (one value applies to all channels).
    public init(mean: [Float], std: [Float]) {
        precondition(mean.count == std.count && !mean.isEmpty, "Normalization: mean and std need the same, non-zero length")
        precondition(std.allSatisfy { $0 > 0 }, "Normalization: std must be positive")
        self.mean = mean
        self.std = std
    }

    /// FedBN's choice: mean 0.5 and std 0.5 on every channel, mapping [0, 1] to [−1, 1].
    public static let fedBN = Normalization(mean: [0.5], std: [0.5])

    /// No change beyond scaling bytes to [0, 1].
    public static let unit = Normalization(mean: [0], std: [1])

    /// Lookup table: `table[c * 256 + byte]` is the normalized value.
    func table(channels: Int) -> [Float] {
        var t = [Float](repeating: 0, count: channels * 256)
        for c in 0..<channels {
            let m = mean[mean.count == 1 ? 0 : c], s = std[std.count == 1 ? 0 : c]
            for b in 0..<256 { t[c * 256 + b] = (Float(b) / 255 - m) / s }
        }
        return t
    }

    /// The whole dataset (or the images at `indices`) normalized, N×C×H×W.
    public func apply(to dataset: Dataset, indices: [Int]? = nil) -> [Float] {
        precondition(mean.count == 1 || mean.count == dataset.channels,
                     "Normalization has \(mean.count) channels, dataset \(dataset.channels)")
        let lut = table(channels: dataset.channels)
        let ids = indices ?? Array(0..<dataset.count)
        var out = [Float](repeating: 0, count: ids.count * dataset.imageSize)
        out.withUnsafeMutableBufferPointer { dst in
            gather(dataset, ids[...], lut: lut, into: dst)
        }
        return out
    }
}

/// Copies and normalizes the images at `ids` into `dst` (len ≥ ids.count × C×H×W).
func gather(_ ds: Dataset, _ ids: ArraySlice<Int>, lut: [Float], into dst: UnsafeMutableBufferPointer<Float>) {
    let plane = ds.height * ds.width, size = ds.imageSize
    ds.pixels.withUnsafeBufferPointer { src in
        lut.withUnsafeBufferPointer { t in
            var o = 0
            for i in ids {
                let base = i * size
                for c in 0..<ds.channels {
                    let tc = c * 256
                    let cb = base + c * plane
                    for k in 0..<plane { dst[o + k] = t[tc + Int(src[cb + k])] }
                    o += plane
                }
            }
        }
    }
}

/// One mini-batch: `count` images, N×C×H×W normalized floats, and their labels.
///
/// The buffers keep their capacity between batches; only the first
/// `count × C×H×W` values of `images` and `count` labels are meaningful.
public struct Batch: Sendable {
    /// Images, `count`×C×H×W.
    public var images: [Float] = []
    /// Labels, `count` of them.
    public var labels: [Int32] = []
    /// Number of images in this batch (the last batch of an epoch may be smaller).
    public var count: Int = 0
    /// Channels, height, width of each image.
    public var channels = 0, height = 0, width = 0

    public init() {}

    /// The shape of `images`: [count, C, H, W].
    public var shape: [Int] { [count, channels, height, width] }
}

/// Iterates over a dataset (or a client's subset of it) in mini-batches, epoch
/// after epoch, reshuffling each epoch with a seed.
///
/// The order of epoch e is a permutation drawn from (seed, e), so a run is
/// reproducible and a restarted client can resume at any epoch with `start(epoch:)`.
public struct BatchIterator: Sendable {
    /// The dataset batches are drawn from.
    public let dataset: Dataset
    /// The sample indices this iterator visits each epoch.
    public let indices: [Int]
    /// Images per batch.
    public let batchSize: Int
    /// Whether each epoch visits `indices` in a fresh seeded order.
    public let shuffle: Bool
    /// Whether a final batch smaller than `batchSize` is skipped.
    public let dropLast: Bool
    let seed: UInt64
    let lut: [Float]
    /// Random transforms of each training sample, drawn from (seed, epoch, sample index).
    public let augmentation: Augmentation
    var scratch: [UInt8] = []
    /// The epoch being iterated (0 first).
    public private(set) var epoch = 0
    var order: [Int]
    var position = 0

    /// - Parameters:
    ///   - dataset: source of images and labels.
    ///   - indices: which samples to visit (a client's partition); all by default.
    ///   - batchSize: images per batch, at least 1.
    ///   - shuffle: reshuffle every epoch (training) or keep `indices` order (evaluation).
    ///   - seed: the shuffling seed.
    ///   - normalization: applied while gathering; FedBN's 0.5/0.5 by default.
    ///   - dropLast: skip a final short batch.
    ///   - augmentation: random transforms of every sample (training only).
    public init(dataset: Dataset, indices: [Int]? = nil, batchSize: Int, shuffle: Bool = true,
                seed: UInt64 = 0, normalization: Normalization = .fedBN, dropLast: Bool = false,
                augmentation: Augmentation = .none) {
        precondition(batchSize >= 1, "BatchIterator: batchSize (\(batchSize)) must be at least 1")
        precondition(normalization.mean.count == 1 || normalization.mean.count == dataset.channels,
                     "BatchIterator: normalization has \(normalization.mean.count) channels, dataset \(dataset.channels)")
        let ids = indices ?? Array(0..<dataset.count)
        precondition(ids.allSatisfy { $0 >= 0 && $0 < dataset.count }, "BatchIterator: index out of range")
        self.dataset = dataset
        self.indices = ids
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.seed = seed
        self.lut = normalization.table(channels: dataset.channels)
        self.augmentation = augmentation
        self.order = ids
        start(epoch: 0)
    }

    /// Batches in one epoch.
    public var batchesPerEpoch: Int {
        dropLast ? indices.count / batchSize : (indices.count + batchSize - 1) / batchSize
    }

    /// Restarts iteration at the beginning of `epoch`, in that epoch's order.
    public mutating func start(epoch: Int) {
        self.epoch = epoch
        position = 0
        order = indices
        if shuffle {
            var rng = SeededGenerator(seed: mixSeed(seed, UInt64(epoch), 0x5EED))
            rng.shuffle(&order)
        }
    }

    /// Fills `batch` with the next mini-batch of the current epoch.
    ///
    /// - Returns: `false` when the epoch is exhausted (then `batch.count` is 0 and the
    ///   iterator has moved to the start of the next epoch).
    public mutating func next(into batch: inout Batch) -> Bool {
        let remaining = order.count - position
        if remaining <= 0 || (dropLast && remaining < batchSize) {
            batch.count = 0
            start(epoch: epoch + 1)
            return false
        }
        let n = min(batchSize, remaining)
        let size = dataset.imageSize
        if batch.images.count < n * size { batch.images = [Float](repeating: 0, count: batchSize * size) }
        if batch.labels.count < n { batch.labels = [Int32](repeating: 0, count: batchSize) }
        let ids = order[position..<(position + n)]
        if augmentation.isEnabled {
            if scratch.count != size { scratch = [UInt8](repeating: 0, count: size) }
            for (k, i) in ids.enumerated() {
                var rng = SeededGenerator(seed: mixSeed(seed, UInt64(epoch), UInt64(i), 0xA06))
                augmentation.apply(dataset.image(i), channels: dataset.channels, height: dataset.height, width: dataset.width,
                                   rng: &rng, into: &scratch)
                let plane = dataset.height * dataset.width
                for c in 0..<dataset.channels {
                    let tc = c * 256, o = k * size + c * plane
                    for j in 0..<plane { batch.images[o + j] = lut[tc + Int(scratch[c * plane + j])] }
                }
            }
        } else {
            batch.images.withUnsafeMutableBufferPointer { gather(dataset, ids, lut: lut, into: $0) }
        }
        for (k, i) in ids.enumerated() { batch.labels[k] = dataset.labels[i] }
        batch.count = n
        batch.channels = dataset.channels
        batch.height = dataset.height
        batch.width = dataset.width
        position += n
        return true
    }
}
