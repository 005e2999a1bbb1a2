/// What went wrong in a tensor operation, with the offending values.
public enum TensorError: Error, Equatable, CustomStringConvertible {
    /// Data of `actual` elements was given for a shape that holds `expected`.
    case countMismatch(shape: [Int], expected: Int, actual: Int)
    /// A reshape between shapes with different element counts.
    case reshape(from: [Int], to: [Int])

    public var description: String {
        switch self {
        case let .countMismatch(shape, expected, actual):
            return "shape \(shape) holds \(expected) elements, but \(actual) values were given"
        case let .reshape(from, to):
            return "cannot reshape \(from) (\(from.reduce(1, *)) elements) to \(to) (\(to.reduce(1, *)) elements)"
        }
    }
}
