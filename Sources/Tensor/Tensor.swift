#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A contiguous, row-major Float32 n-d array.
///
/// `Tensor` has reference semantics: layers, optimizers and aggregators update
/// their tensors in place, and a view (`reshaped(_:)`, `slice(_:)`) shares
/// memory with the tensor it came from. Memory is allocated once, zero-filled
/// (by `calloc`, so a large tensor's pages cost nothing until they are written),
/// and released when the last view of it goes away. A tensor is not
/// thread-safe: give each thread its own.
public final class Tensor: @unchecked Sendable {
    /// Dimensions, outermost first (NCHW for images, [out, in] for linear weights).
    public let shape: [Int]
    /// Number of elements: the product of `shape` (1 for a scalar of shape []).
    public let count: Int
    /// The first element. Valid for `count` elements while `self` is alive.
    public let data: UnsafeMutablePointer<Float>
    /// The tensor that owns `data` when `self` is a view, `nil` when `self` owns it.
    private let base: Tensor?

    /// A zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        // calloc: large blocks come zeroed from the kernel, untouched pages are not resident
        // (a server's never-used gradient buffers cost no memory).
        guard let raw = calloc(max(count, 1), MemoryLayout<Float>.stride) else {
            fatalError("out of memory allocating a tensor of shape \(shape)")
        }
        self.data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        self.base = nil
    }

    /// A tensor holding a copy of `values`.
    /// - Throws: `TensorError.countMismatch` when `values.count` is not the product of `shape`.
    public convenience init(shape: [Int], values: [Float]) throws {
        let expected = shape.reduce(1, *)
        guard values.count == expected else {
            throw TensorError.countMismatch(shape: shape, expected: expected, actual: values.count)
        }
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { src in
            if let p = src.baseAddress { data.update(from: p, count: count) }
        }
    }

    /// A tensor of `shape` filled with `value`.
    public convenience init(shape: [Int], repeating value: Float) {
        self.init(zeros: shape)
        data.update(repeating: value, count: count)
    }

    private init(view base: Tensor, offset: Int, shape: [Int]) {
        self.shape = shape
        self.count = shape.reduce(1, *)
        self.data = base.data + offset
        self.base = base.base ?? base
    }

    deinit {
        if base == nil { free(data) }
    }

    /// Number of dimensions.
    public var rank: Int { shape.count }

    /// A view of the same memory with another shape of the same element count.
    /// - Throws: `TensorError.reshape` naming both shapes when the counts differ.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        let n = newShape.reduce(1, *)
        guard n == count, newShape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.reshape(from: shape, to: newShape)
        }
        return Tensor(view: self, offset: 0, shape: newShape)
    }

    /// A view of rows `range` along the first dimension.
    public func slice(_ range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "slice \(range) out of \(shape)")
        let inner = shape.dropFirst().reduce(1, *)
        return Tensor(view: self, offset: range.lowerBound * inner, shape: [range.count] + shape.dropFirst())
    }

    /// The elements as an array (a copy).
    public var values: [Float] { Array(UnsafeBufferPointer(start: data, count: count)) }

    /// The elements as a buffer pointer over this tensor's memory (no copy).
    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: data, count: count) }

    /// A new tensor with a copy of the elements.
    public func copy() -> Tensor {
        let t = Tensor(zeros: shape)
        t.data.update(from: data, count: count)
        return t
    }

    /// Copies the elements of `other`, which must have the same element count.
    public func assign(from other: Tensor) {
        precondition(other.count == count, "assign: \(other.shape) into \(shape)")
        data.update(from: other.data, count: count)
    }

    /// Sets every element to zero.
    public func zero() { data.update(repeating: 0, count: count) }

    /// Sets every element to zero and gives the memory's whole pages back to the system: they
    /// cost nothing until written again (a model whose values are kept elsewhere meanwhile).
    public func zeroReleasingMemory() { zeroReleasingPages(data, byteCount: count * 4) }

    /// Sets every element to `value`.
    public func fill(_ value: Float) { data.update(repeating: value, count: count) }

    /// Element `i` of the flattened tensor.
    public subscript(i: Int) -> Float {
        get { precondition(i >= 0 && i < count); return data[i] }
        set { precondition(i >= 0 && i < count); data[i] = newValue }
    }
}

/// Sets `byteCount` bytes at `start` to zero: the whole pages among them are given back to the
/// system (`MADV_DONTNEED`: they read as zero and cost no memory until written again), the
/// partial pages at either end are cleared. The memory stays allocated and usable.
public func zeroReleasingPages(_ start: UnsafeMutableRawPointer, byteCount: Int) {
    guard byteCount > 0 else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let address = Int(bitPattern: start)
    let lo = (address + page - 1) / page * page, hi = (address + byteCount) / page * page
    guard hi > lo else {
        memset(start, 0, byteCount)
        return
    }
    memset(start, 0, lo - address)
    #if canImport(Glibc)
    if madvise(UnsafeMutableRawPointer(bitPattern: lo), hi - lo, MADV_DONTNEED) != 0 {
        memset(UnsafeMutableRawPointer(bitPattern: lo)!, 0, hi - lo)
    }
    #else
    memset(UnsafeMutableRawPointer(bitPattern: lo)!, 0, hi - lo)
    #endif
    memset(UnsafeMutableRawPointer(bitPattern: hi)!, 0, address + byteCount - hi)
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = (0..<min(count, 6)).map { String(data[$0]) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(count > 6 ? ", …" : "")]"
    }
}

/// A buffer that a layer keeps between steps and reallocates only when the
/// shape it needs changes: steady-state training allocates nothing.
public struct Workspace: Sendable {
    public private(set) var tensor: Tensor?
    public init() {}

    /// A tensor of exactly `shape`, reused from the last call when the shape is unchanged.
    /// Its contents are whatever the last user left there.
    public mutating func get(_ shape: [Int]) -> Tensor {
        if let t = tensor, t.shape == shape { return t }
        let t = Tensor(zeros: shape)
        tensor = t
        return t
    }
}
