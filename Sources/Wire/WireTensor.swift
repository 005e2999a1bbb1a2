import Foundation

/// One named tensor as it travels on the wire: name, shape, dtype and raw little-endian bytes.
///
/// This is Wire's own small value type so that Wire needs no numeric module; the Federated layer
/// converts between it and its tensors with `init(name:shape:floats:)` and `floats()`.
public struct WireTensor: Sendable, Equatable {
    /// Stable dotted name, e.g. `"conv1.weight"`.
    public var name: String
    /// Extent of each dimension, outermost first (row-major); empty for a scalar.
    public var shape: [Int]
    /// Element type of `bytes`.
    public var dtype: DType
    /// Row-major elements, little-endian.
    public var bytes: Data

    /// Creates a tensor from raw little-endian bytes, checking that they fit the shape and dtype.
    /// - Throws: `WireError.unsupportedDType`, `.invalidShape` or `.tensorSizeMismatch`.
    public init(name: String, shape: [Int], dtype: DType, bytes: Data) throws {
        self.name = name
        self.shape = shape
        self.dtype = dtype
        self.bytes = bytes
        try validate()
    }

    /// Creates a float32 tensor from `floats` (row-major).
    /// - Precondition: `floats.count` equals the product of `shape`.
    public init(name: String, shape: [Int], floats: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 } && floats.count == shape.reduce(1, *),
                     "tensor \(name): \(floats.count) floats do not fill shape \(shape)")
        self.name = name
        self.shape = shape
        self.dtype = .float32
        self.bytes = floats.withUnsafeBufferPointer { buffer in
            #if _endian(big)
            let swapped = buffer.map { $0.bitPattern.littleEndian }
            return swapped.withUnsafeBytes { Data($0) }
            #else
            return Data(buffer: buffer)
            #endif
        }
    }

    /// Number of elements: the product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The elements of a float32 tensor in host order.
    /// - Throws: `WireError.dtypeMismatch` when `dtype` is not float32.
    public func floats() throws -> [Float] {
        guard dtype == .float32 else {
            throw WireError.dtypeMismatch(tensor: name, expected: "\(DType.float32)", actual: "\(dtype)")
        }
        let count = bytes.count / 4
        return [Float](unsafeUninitializedCapacity: count) { destination, initialized in
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(destination).copyMemory(from: UnsafeRawBufferPointer(rebasing: source[0..<count * 4]))
            }
            #if _endian(big)
            for i in 0..<count { destination[i] = Float(bitPattern: UInt32(littleEndian: destination[i].bitPattern)) }
            #endif
            initialized = count
        }
    }

    /// Checks the dtype, the shape and the byte count.
    /// - Throws: `WireError.unsupportedDType`, `.invalidShape` or `.tensorSizeMismatch`.
    public func validate() throws {
        guard let size = dtype.byteWidth else {
            throw WireError.unsupportedDType(tensor: name, dtype: dtype.rawValue)
        }
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw WireError.invalidShape(tensor: name, shape: shape.map(Int64.init))
        }
        let (elements, overflow) = shape.reduce((1, false)) { acc, dim in
            let (product, o) = acc.0.multipliedReportingOverflow(by: dim)
            return (product, acc.1 || o)
        }
        let (expected, overflow2) = elements.multipliedReportingOverflow(by: size)
        guard !overflow, !overflow2, expected == bytes.count else {
            throw WireError.tensorSizeMismatch(tensor: name, shape: shape.map(Int64.init),
                                               expectedBytes: overflow || overflow2 ? Int.max : expected,
                                               actualBytes: bytes.count)
        }
    }
}

extension DType {
    /// Bytes per element, or `nil` for an unspecified or unknown dtype.
    public var byteWidth: Int? {
        switch self {
        case .float32, .int32: return 4
        case .float16: return 2
        case .int64: return 8
        case .uint8: return 1
        case .unspecified, .UNRECOGNIZED: return nil
        }
    }
}

// MARK: - Protobuf conversion

extension WireTensor {
    /// Converts a protobuf tensor, validating it.
    /// - Throws: `WireError.invalidShape`, `.unsupportedDType` or `.tensorSizeMismatch`.
    public init(_ proto: Fedkit_V1_Tensor) throws {
        guard proto.shape.allSatisfy({ $0 >= 0 && $0 <= Int64(Int.max) }) else {
            throw WireError.invalidShape(tensor: proto.name, shape: proto.shape)
        }
        try self.init(name: proto.name, shape: proto.shape.map { Int($0) }, dtype: proto.dtype, bytes: proto.data)
    }

    /// The protobuf form of this tensor (shares the bytes, no copy).
    public var proto: Fedkit_V1_Tensor {
        var tensor = Fedkit_V1_Tensor()
        tensor.name = name
        tensor.shape = shape.map { Int64($0) }
        tensor.dtype = dtype
        tensor.data = bytes
        return tensor
    }
}

extension Fedkit_V1_TensorSet {
    /// Creates a set holding `tensors` in order.
    public init(_ tensors: [WireTensor]) {
        self.init()
        self.tensors = tensors.map(\.proto)
    }

    /// The tensors, validated one by one.
    /// - Throws: the first `WireError` found, naming the tensor.
    public func wireTensors() throws -> [WireTensor] {
        try tensors.map { try WireTensor($0) }
    }
}

extension Fedkit_V1_Payload {
    /// An inline payload holding `tensors`.
    public init(_ tensors: [WireTensor]) {
        self.init()
        self.content = .inline(Fedkit_V1_TensorSet(tensors))
    }

    /// The tensors of an inline payload, validated.
    /// - Throws: `WireError.invalidTensorSet` when the payload is still chunked or empty, or the
    ///   first tensor error found.
    public func wireTensors() throws -> [WireTensor] {
        switch content {
        case .inline(let set): return try set.wireTensors()
        case .chunked(let ref): throw WireError.invalidTensorSet(reason: "payload transfer \(ref.transferID) was not reassembled")
        case .none: return []
        }
    }
}
