import Data
import Dispatch
import NN
import Tensor

/// A client's data: its share of its domain's training split and the domain's test split.
public struct LocalData: Sendable {
    public var train: Dataset
    /// Indices into `train` this client owns.
    public var trainIndices: [Int]
    public var test: Dataset
    public var normalization: Normalization
    /// Random transforms of training samples (never of evaluation).
    public var augmentation: Augmentation

    public init(train: Dataset, trainIndices: [Int]? = nil, test: Dataset, normalization: Normalization = .fedBN,
                augmentation: Augmentation = .none) {
        self.train = train
        self.trainIndices = trainIndices ?? Array(0..<train.count)
        self.test = test
        self.normalization = normalization
        self.augmentation = augmentation
    }

    public var domain: String { train.domain }
}

/// What one round of local training produced.
public struct FitSummary: Sendable, Equatable {
    /// Training examples used (n_k of FedAvg's weighting; not multiplied by epochs).
    public var examples: Int
    /// Mean training loss and accuracy over the round's steps.
    public var loss: Float
    public var accuracy: Float
    public var seconds: Double
    /// Steps taken and AGC units clipped (FedWon).
    public var steps: Int
    public var clippedUnits: Int
}

/// An evaluation on the client's own test split.
public struct EvaluationSummary: Sendable, Equatable {
    public var loss: Float
    public var accuracy: Float
    public var examples: Int
    public var correctPerClass: [Int]
    public var totalPerClass: [Int]
}

/// Local training and evaluation of one client's model on its own data.
public final class LocalLearner {
    public let model: Model
    public let data: LocalData
    /// Name used to derive this client's shuffling seed.
    public let clientName: String
    private var batch = Batch()
    private var input = Workspace()

    public init(model: Model, data: LocalData, clientName: String) {
        self.model = model; self.data = data; self.clientName = clientName
    }

    private var hasBatchNorm: Bool { model.entries.contains { $0.isBatchNorm } }

    /// Copies the current `batch` into a model input tensor (N, C, H, W).
    private func inputTensor() -> (Tensor, [Int]) {
        let shape = [batch.count, batch.channels, batch.height, batch.width]
        let t = input.get(shape)
        batch.images.withUnsafeBufferPointer { t.data.update(from: $0.baseAddress!, count: t.count) }
        return (t, batch.labels.prefix(batch.count).map(Int.init))
    }

    /// Runs `settings.epochs` epochs of SGD (fresh optimizer, as in the FedBN reference),
    /// with AGC when `settings.agcLambda` > 0 and the proximal term when `proximalMu` > 0
    /// (anchored at the weights the round started from).
    /// - Throws: `NNError` when training diverges (the model is then left as the last good step had it).
    public func fit(settings: TrainingSettings, round: UInt64) throws -> FitSummary {
        let start = DispatchTime.now().uptimeNanoseconds
        let sgd = SGD(learningRate: settings.learningRate, momentum: settings.momentum, weightDecay: settings.weightDecay)
        let trainer = Trainer(model: model, optimizer: sgd,
                              clipping: settings.agcLambda > 0 ? AdaptiveGradientClipping(clipping: settings.agcLambda, excluded: [model.classifierName]) : nil)
        if settings.proximalMu > 0 {
            trainer.proximalMu = settings.proximalMu
            trainer.proximalAnchor = model.snapshot { $0.kind == .parameter }
        }
        var iterator = BatchIterator(dataset: data.train, indices: data.trainIndices, batchSize: settings.batchSize, shuffle: true,
                                     seed: settings.seed ^ (round &* 0x9E37_79B9_7F4A_7C15) ^ stableHash(clientName),
                                     normalization: data.normalization, augmentation: data.augmentation)
        var lossSum = 0.0, correct = 0, seen = 0, steps = 0
        for epoch in 0..<max(settings.epochs, 1) {
            iterator.start(epoch: epoch)
            while iterator.next(into: &batch) {
                // A BatchNorm layer cannot train on one example; a lone last example is skipped.
                if batch.count == 1 && settings.batchSize > 1 && hasBatchNorm { continue }
                let (x, y) = inputTensor()
                let r = try trainer.step(input: x, labels: y)
                lossSum += Double(r.loss) * Double(r.examples); correct += r.correct; seen += r.examples; steps += 1
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return FitSummary(examples: data.trainIndices.count, loss: seen > 0 ? Float(lossSum / Double(seen)) : 0,
                          accuracy: seen > 0 ? Float(correct) / Float(seen) : 0, seconds: seconds, steps: steps,
                          clippedUnits: trainer.clippedUnits)
    }

    /// Loss and accuracy on the client's whole test split, in evaluation mode.
    public func evaluate(batchSize: Int = 256) throws -> EvaluationSummary {
        let classes = model.classes
        var correctPer = [Int](repeating: 0, count: classes), totalPer = correctPer
        var lossSum = 0.0, seen = 0
        var loss = CrossEntropyLoss()
        var iterator = BatchIterator(dataset: data.test, batchSize: batchSize, shuffle: false, normalization: data.normalization)
        while iterator.next(into: &batch) {
            let (x, y) = inputTensor()
            let logits = try model.forward(x, training: false)
            lossSum += Double(try loss.forward(logits: logits, labels: y)) * Double(y.count)
            for (p, label) in zip(logits.argmaxRows(), y) {
                totalPer[label] += 1
                if p == label { correctPer[label] += 1 }
            }
            seen += y.count
        }
        let correct = correctPer.reduce(0, +)
        return EvaluationSummary(loss: seen > 0 ? Float(lossSum / Double(seen)) : 0, accuracy: seen > 0 ? Float(correct) / Float(seen) : 0,
                                 examples: seen, correctPerClass: correctPer, totalPerClass: totalPer)
    }
}

/// FNV-1a of a string: a seed component that is the same on every run and machine.
func stableHash(_ s: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
    return h
}
