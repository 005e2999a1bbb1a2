// digits5: a procedural five-domain digits benchmark in the spirit of Digits-Five
// (MNIST, USPS, SVHN, SynthDigits, MNIST-M), the benchmark of FedBN (Li et al.,
// ICLR 2021) and FedWon (Zhuang & Lyu, ICLR 2024).
//
// The same ten digit skeletons are drawn in five styles that differ in the features
// a convolutional network sees — colour, background, stroke width, resolution,
// blur, texture — while the labels mean the same thing. Every image is 3×28×28.
// Sample i of (seed, domain, split) depends on nothing else, so any count can be
// generated and a longer dataset extends a shorter one.

import Tensor

/// The built-in five-domain digits benchmark.
public enum Digits5 {
    /// One of the five styles.
    public enum Domain: String, CaseIterable, Sendable, Codable {
        /// Light grey handwriting on black, centred, with jitter.
        case mnist
        /// Drawn at 16×16 with thick strokes filling the frame, upscaled: blurry, low resolution.
        case usps
        /// Printed digits in colour on shaded colour backgrounds, neighbouring digits cut
        /// off at the edges, blur and uneven illumination.
        case svhn
        /// Printed digits of varied weight, colour, background and small rotation; sharp.
        case synth
        /// MNIST strokes blended with colourful textures: the stroke inverts the texture.
        case mnistm

        var index: UInt64 {
            switch self {
            case .mnist: 0
            case .usps: 1
            case .svhn: 2
            case .synth: 3
            case .mnistm: 4
            }
        }
    }

    /// Which split a sample belongs to; the two splits are independent draws.
    public enum Split: String, CaseIterable, Sendable {
        case train, test
    }

    /// Image side in pixels (images are `channels`×28×28).
    public static let imageSide = 28
    /// Channels per image.
    public static let channels = 3
    /// Number of classes (the digits 0–9).
    public static let classCount = 10

    /// Training images per domain in the FedBN protocol: USPS's 9,298 images split
    /// 80/20 leave 7,438 for training.
    public static let protocolTrainCount = 7438
    /// Test images per domain in the FedBN protocol (the 20% of USPS).
    public static let protocolTestCount = 1860
    /// Fraction of its domain's training split a client trains on in the FedBN
    /// protocol: 10%, i.e. 743 images.
    public static let protocolFraction = 0.1

    /// Generates `count` images of one domain.
    ///
    /// Labels are balanced: every run of ten consecutive samples (0–9, 10–19, ...)
    /// holds each digit once, in a seeded order.
    /// - Parameters:
    ///   - domain: the style to draw.
    ///   - count: number of images.
    ///   - seed: any value; the same seed gives the same bytes.
    ///   - split: `.train` or `.test` (independent draws of the same distribution).
    /// - Returns: a 3×28×28 dataset named after the domain.
    public static func generate(domain: Domain, count: Int, seed: UInt64, split: Split = .train) -> Dataset {
        precondition(count >= 0, "Digits5.generate: count (\(count)) must not be negative")
        let side = imageSide, plane = side * side, size = channels * plane
        let splitIndex: UInt64 = split == .train ? 0 : 1
        var pixels = [UInt8](repeating: 0, count: count * size)
        var labels = [Int32](repeating: 0, count: count)
        var order = [Int](0..<10)
        var painter = Painter()
        for i in 0..<count {
            if i % 10 == 0 {
                var r = SeededGenerator(seed: mixSeed(seed, domain.index, splitIndex, UInt64(i / 10), 0x1AB_E15))
                order = Array(0..<10)
                r.shuffle(&order)
            }
            let label = order[i % 10]
            labels[i] = Int32(label)
            var rng = SeededGenerator(seed: mixSeed(seed, domain.index, splitIndex, UInt64(i)))
            painter.draw(domain: domain, digit: label, rng: &rng)
            pixels.withUnsafeMutableBufferPointer { dst in
                let base = i * size
                for k in 0..<size {
                    let v = painter.rgb[k]
                    dst[base + k] = UInt8(min(max(v * 255 + 0.5, 0), 255))
                }
            }
        }
        return Dataset(domain: domain.rawValue, channels: channels, height: side, width: side,
                       pixels: pixels, labels: labels, classCount: classCount)
    }

    /// Generates train and test splits for several domains.
    ///
    /// With the defaults, `Partitioner` with `.domain(clientsPerDomain: 1)` and
    /// `fraction: protocolFraction` reproduces the FedBN protocol: one client per
    /// domain training on 743 images and tested on 1,860.
    /// - Parameters:
    ///   - domains: which domains, in client order.
    ///   - trainCount: training images per domain.
    ///   - testCount: test images per domain.
    ///   - seed: the same seed gives the same bytes.
    public static func makeDomains(_ domains: [Domain] = Domain.allCases,
                                   trainCount: Int = protocolTrainCount,
                                   testCount: Int = protocolTestCount,
                                   seed: UInt64) -> [DomainData] {
        domains.map { d in
            DomainData(name: d.rawValue,
                       train: generate(domain: d, count: trainCount, seed: seed, split: .train),
                       test: generate(domain: d, count: testCount, seed: seed, split: .test))
        }
    }
}
