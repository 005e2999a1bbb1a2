import Tensor

/// Fully connected layer, PyTorch's `nn.Linear`: output (N, O) = input (N, F) · weightᵀ + bias.
///
/// weight (O, F), bias (O); both initialized uniform(±1/√F) like PyTorch.
public final class Linear: Layer {
    public var path = "fc"
    public var needsInputGradient = true
    public let weight: Tensor, dWeight: Tensor
    public let bias: Tensor?, dBias: Tensor?
    /// The input of the last forward pass (not copied: the producing layer keeps it until the next step).
    private var input: Tensor?
    private var output = Workspace()
    private var dInput = Workspace()

    public init(inputFeatures: Int, outputFeatures: Int, bias: Bool = true, seed: UInt64 = 0) {
        precondition(inputFeatures > 0 && outputFeatures > 0)
        weight = Tensor(zeros: [outputFeatures, inputFeatures]); dWeight = Tensor(zeros: weight.shape)
        self.bias = bias ? Tensor(zeros: [outputFeatures]) : nil
        self.dBias = bias ? Tensor(zeros: [outputFeatures]) : nil
        var rng = SeededGenerator(seed: seed)
        let bound = 1 / Float(inputFeatures).squareRoot()
        weight.fillUniform(-bound, bound, using: &rng)
        self.bias?.fillUniform(-bound, bound, using: &rng)
    }

    public var inputFeatures: Int { weight.shape[1] }
    public var outputFeatures: Int { weight.shape[0] }

    public func forward(_ input: Tensor, training: Bool) throws -> Tensor {
        try check(input, [nil, inputFeatures], "input")
        self.input = input
        let n = input.shape[0], o = outputFeatures, f = inputFeatures
        let out = output.get([n, o])
        if let bias {
            for i in 0..<n { (out.data + i * o).update(from: bias.data, count: o) }
        }
        BLAS.gemm(transA: false, transB: true, m: n, n: o, k: f, alpha: 1, a: input.data, lda: f,
                  b: weight.data, ldb: f, beta: bias == nil ? 0 : 1, c: out.data, ldc: o)
        return out
    }

    public func backward(_ dOutput: Tensor) -> Tensor {
        guard let input else { preconditionFailure("Linear.backward before forward") }
        let n = input.shape[0], o = outputFeatures, f = inputFeatures
        // ∂W (O, F) += ∂outᵀ (O, N) · input (N, F)
        BLAS.gemm(transA: true, transB: false, m: o, n: f, k: n, alpha: 1, a: dOutput.data, lda: o,
                  b: input.data, ldb: f, beta: 1, c: dWeight.data, ldc: f)
        if let dBias {
            for i in 0..<n { let d = dOutput.data + i * o; for j in 0..<o { dBias.data[j] += d[j] } }
        }
        let dIn = dInput.get(input.shape)
        if needsInputGradient {
            // ∂input (N, F) = ∂out (N, O) · W (O, F)
            BLAS.gemm(transA: false, transB: false, m: n, n: f, k: o, alpha: 1, a: dOutput.data, lda: o,
                      b: weight.data, ldb: f, beta: 0, c: dIn.data, ldc: f)
        }
        return dIn
    }

    public var state: [StateEntry] {
        var s = [StateEntry(name: "weight", value: weight, gradient: dWeight, kind: .parameter, isNormalization: false, layerKind: "Linear")]
        if let bias { s.append(StateEntry(name: "bias", value: bias, gradient: dBias, kind: .parameter, isNormalization: false, layerKind: "Linear")) }
        return s
    }
}
