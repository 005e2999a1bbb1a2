// Shape letters used throughout the Data module:
//   N  number of images      C  channels (3 for every model input)
//   H  height                W  width
// Images are stored N×C×H×W (NCHW), row-major, one byte per value (0...255).

/// A labelled image dataset held in memory: 8-bit pixels in N×C×H×W order and one
/// class label per image.
///
/// Pixels are kept as bytes (a quarter of the memory of `Float`); `BatchIterator`
/// turns them into normalized `Float` batches. Every reader and the `digits5`
/// generator produce this type, already expanded to the model's channel count and
/// resized to its input size.
public struct Dataset: Sendable, Equatable {
    /// Name of the domain the images come from, e.g. `"svhn"`.
    public var domain: String
    /// Channels per image (C).
    public let channels: Int
    /// Image height in pixels (H).
    public let height: Int
    /// Image width in pixels (W).
    public let width: Int
    /// All pixels, N×C×H×W, row-major.
    public var pixels: [UInt8]
    /// One label per image, each in 0..<classCount.
    public var labels: [Int32]
    /// Number of classes the labels range over.
    public let classCount: Int

    /// Creates a dataset; the pixel count must be `labels.count × C × H × W`.
    public init(domain: String, channels: Int, height: Int, width: Int,
                pixels: [UInt8], labels: [Int32], classCount: Int) {
        precondition(pixels.count == labels.count * channels * height * width,
                     "Dataset: \(pixels.count) pixels do not make \(labels.count) images of \(channels)×\(height)×\(width)")
        self.domain = domain
        self.channels = channels
        self.height = height
        self.width = width
        self.pixels = pixels
        self.labels = labels
        self.classCount = classCount
    }

    /// Number of images (N).
    public var count: Int { labels.count }

    /// Values per image (C×H×W).
    public var imageSize: Int { channels * height * width }

    /// The pixels of image `index` (C×H×W).
    public func image(_ index: Int) -> ArraySlice<UInt8> {
        pixels[index * imageSize ..< (index + 1) * imageSize]
    }

    /// The images at `indices`, in that order, as a new dataset.
    public func subset(_ indices: [Int]) -> Dataset {
        let size = imageSize
        var out = [UInt8](repeating: 0, count: indices.count * size)
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                for (k, i) in indices.enumerated() {
                    precondition(i >= 0 && i < count, "Dataset.subset: index \(i) out of 0..<\(count)")
                    dst.baseAddress!.advanced(by: k * size)
                        .update(from: src.baseAddress!.advanced(by: i * size), count: size)
                }
            }
        }
        return Dataset(domain: domain, channels: channels, height: height, width: width,
                       pixels: out, labels: indices.map { labels[$0] }, classCount: classCount)
    }

    /// Number of images of each class, optionally only among `indices`.
    public func classHistogram(_ indices: [Int]? = nil) -> [Int] {
        var h = [Int](repeating: 0, count: classCount)
        if let indices {
            for i in indices { h[Int(labels[i])] += 1 }
        } else {
            for l in labels { h[Int(l)] += 1 }
        }
        return h
    }

    /// Per-channel mean and standard deviation of the pixels scaled to [0, 1].
    public func channelStatistics() -> (mean: [Double], std: [Double]) {
        let plane = height * width
        var sum = [Double](repeating: 0, count: channels)
        var sq = [Double](repeating: 0, count: channels)
        pixels.withUnsafeBufferPointer { p in
            for n in 0..<count {
                for c in 0..<channels {
                    var s: UInt64 = 0, s2: UInt64 = 0
                    let base = (n * channels + c) * plane
                    for k in 0..<plane {
                        let v = UInt64(p[base + k])
                        s += v; s2 += v * v
                    }
                    sum[c] += Double(s); sq[c] += Double(s2)
                }
            }
        }
        let m = Double(max(1, count * plane))
        var mean = [Double](), std = [Double]()
        for c in 0..<channels {
            let mu = sum[c] / m
            mean.append(mu / 255)
            std.append(max(0, sq[c] / m - mu * mu).squareRoot() / 255)
        }
        return (mean, std)
    }
}

/// One domain of a multi-domain benchmark: its training and test splits.
public struct DomainData: Sendable, Equatable {
    /// Domain name, e.g. `"mnistm"`; used in client names and reports.
    public var name: String
    /// Training split.
    public var train: Dataset
    /// Test split; every client of this domain is evaluated on all of it.
    public var test: Dataset
    /// The name of each class, by label, when the data names them (image folders,
    /// FedBN's prepared files); empty when labels are only numbers.
    public var classNames: [String]

    public init(name: String, train: Dataset, test: Dataset, classNames: [String] = []) {
        self.name = name
        self.train = train
        self.test = test
        self.classNames = classNames
    }
}
