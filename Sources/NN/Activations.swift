import Tensor

/// max(x, 0) elementwise; backward passes the gradient where the output is positive.
public final class ReLU: Layer {
    public var path = "relu"
    public var needsInputGradient = true
    /// The output of the last forward pass (its sign is the mask backward needs).
    private var output = Workspace()
    private var dInput = Workspace()
    public init() {}

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        let out = output.get(input.shape)
        for i in 0..<input.count { out.data[i] = max(input.data[i], 0) }
        return out
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        let out = output.get(dOutput.shape), dIn = dInput.get(dOutput.shape)
        // Branch-free so it vectorizes: out ≥ 0, and its bit pattern is non-zero exactly when out > 0.
        let o = UnsafeRawPointer(out.data).assumingMemoryBound(to: UInt32.self)
        let d = UnsafeRawPointer(dOutput.data).assumingMemoryBound(to: UInt32.self)
        let dst = UnsafeMutableRawPointer(dIn.data).assumingMemoryBound(to: UInt32.self)
        for i in 0..<dOutput.count {
            let positive = (o[i] &+ 0x7FFF_FFFF) >> 31
            dst[i] = d[i] & (0 &- positive)
        }
        return dIn
    }

    public var state: [StateEntry] { [] }
}

/// (N, d1, d2, …) → (N, d1·d2·…), a view; backward reshapes back.
public final class Flatten: Layer {
    public var path = "flatten"
    public var needsInputGradient = true
    /// Shape of the last forward input.
    private var inputShape: [Int] = []
    public init() {}

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        guard input.rank >= 1 else { throw NNError.shape(layer: path, expected: ["N", "…"], actual: input.shape, what: "input") }
        inputShape = input.shape
        return try input.reshaped([input.shape[0], input.count / max(input.shape[0], 1)])
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        // Same element count by construction.
        try! dOutput.reshaped(inputShape)
    }

    public var state: [StateEntry] { [] }
}

/// Inverted dropout: in training, zeroes each element with probability p and scales
/// the rest by 1/(1 − p); in evaluation, the identity. Seeded, so runs reproduce.
public final class Dropout: Layer {
    public var path = "dropout"
    public var needsInputGradient = true
    public let probability: Float
    private var rng: SeededGenerator
    /// Per-element multiplier (0 or 1/(1 − p)) of the last training forward; empty after evaluation.
    private var mask = Workspace()
    private var maskActive = false
    private var output = Workspace()
    private var dInput = Workspace()

    public init(probability: Float = 0.5, seed: UInt64 = 0) {
        precondition(probability >= 0 && probability < 1, "Dropout probability \(probability) must be in [0, 1)")
        self.probability = probability
        rng = SeededGenerator(seed: seed)
    }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        maskActive = training && probability > 0
        guard maskActive else { return input }
        let m = mask.get(input.shape), out = output.get(input.shape)
        let keep = 1 / (1 - probability)
        for i in 0..<input.count {
            m.data[i] = rng.nextUniform() < probability ? 0 : keep
            out.data[i] = input.data[i] * m.data[i]
        }
        return out
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        guard maskActive else { return dOutput }
        let m = mask.get(dOutput.shape), dIn = dInput.get(dOutput.shape)
        for i in 0..<dOutput.count { dIn.data[i] = dOutput.data[i] * m.data[i] }
        return dIn
    }

    public var state: [StateEntry] { [] }
}
