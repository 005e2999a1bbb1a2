import Foundation
import Tensor
import Wire

enum Samples {
    /// `count` floats with arbitrary bit patterns (NaNs, infinities and subnormals included): compare them by bits.
    static func floats(_ count: Int, seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        return (0..<count).map { _ in Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) }
    }

    static func smallTensors() -> [WireTensor] {
        [
            WireTensor(name: "conv1.weight", shape: [4, 3, 3, 3], floats: floats(108, seed: 1)),
            WireTensor(name: "conv1.bias", shape: [4], floats: [0.5, -0.25, 0, -0.0]),
            WireTensor(name: "scalar", shape: [], floats: [3.25]),
        ]
    }

    /// One envelope of every body kind, with every field set to a non-default value.
    static func everyKind() -> [Envelope] {
        var hello = Fedkit_V1_Hello()
        hello.clientName = "svhn-0"
        hello.protocolVersion = 1
        hello.capabilities = ["chunked-payload", "fedbn"]
        hello.dataset = .with {
            $0.domain = "svhn"; $0.trainExamples = 7943; $0.testExamples = 1000
            $0.labelHistogram = [794, 795, 793, 0, 1, 2, 3, 4, 5, 6]
        }
        hello.softwareVersion = "0.1.0"

        let welcome = Fedkit_V1_Welcome.with {
            $0.protocolVersion = 1; $0.capabilities = ["chunked-payload"]
            $0.heartbeatIntervalSeconds = 5; $0.softwareVersion = "0.1.0"
        }
        let reject = Fedkit_V1_Reject.with { $0.reason = "protocol version 9 is not supported"; $0.supportedVersions = [1] }
        let config = Fedkit_V1_TrainingConfig.with {
            $0.epochs = 1; $0.batchSize = 32; $0.learningRate = 0.01; $0.momentum = 0.9
            $0.weightDecay = 5e-4; $0.agcLambda = 0.16; $0.fedproxMu = 0.01; $0.seed = 42
        }
        let fitRequest = Fedkit_V1_FitRequest.with {
            $0.round = 12; $0.parameters = Fedkit_V1_Payload(smallTensors()); $0.config = config
        }
        let fitResult = Fedkit_V1_FitResult.with {
            $0.round = 12; $0.parameters = Fedkit_V1_Payload(smallTensors()); $0.numExamples = 7943
            $0.trainLoss = 0.31; $0.trainAccuracy = 0.91; $0.wallTimeSeconds = 12.5
        }
        let evaluateRequest = Fedkit_V1_EvaluateRequest.with { $0.round = 12; $0.parameters = Fedkit_V1_Payload(smallTensors()) }
        let evaluateResult = Fedkit_V1_EvaluateResult.with {
            $0.round = 12; $0.loss = 0.4; $0.accuracy = 0.88; $0.numExamples = 1000
            $0.correctPerClass = [90, 80, 0, 7]; $0.totalPerClass = [100, 100, 1, 8]
        }
        let heartbeat = Fedkit_V1_Heartbeat.with { $0.unixMillis = 1_790_000_000_000 }
        let goodbye = Fedkit_V1_Goodbye.with { $0.reason = "training finished" }
        let error = Fedkit_V1_Error.with { $0.code = .outOfOrder; $0.message = "fit_result before hello" }
        let chunk = Fedkit_V1_PayloadChunk.with { $0.transferID = 7; $0.index = 3; $0.data = Data([0, 1, 2, 255]) }

        let bodies: [Envelope.OneOf_Body] = [
            .hello(hello), .welcome(welcome), .reject(reject), .fitRequest(fitRequest), .fitResult(fitResult),
            .evaluateRequest(evaluateRequest), .evaluateResult(evaluateResult), .heartbeat(heartbeat),
            .goodbye(goodbye), .error(error), .chunk(chunk),
        ]
        return bodies.enumerated().map { i, body in
            var envelope = Envelope(body)
            envelope.sequence = UInt64(i)
            return envelope
        }
    }
}
