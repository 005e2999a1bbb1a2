/// Everything that can go wrong reading datasets or parsing data options. Every
/// case names the file (or the option value) and what is wrong with it.
public enum DataError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file could not be opened, read or written.
    case io(file: String, reason: String)
    /// The file does not start with the magic number of its format.
    case badMagic(file: String, expected: String, found: String)
    /// The file ends before the data its header announces.
    case truncated(file: String, expected: Int, actual: Int)
    /// Images and labels disagree in number.
    case countMismatch(file: String, images: Int, labels: Int)
    /// An element type the reader does not handle.
    case unsupportedDType(file: String, dtype: String)
    /// The file is structurally wrong in some other way.
    case malformed(file: String, reason: String)
    /// A domain asked for has no folder under the dataset root.
    case missingDomain(root: String, domain: String)
    /// A split of a domain has no file in any supported format.
    case missingSplit(folder: String, split: String)
    /// A partition spec or other option value that cannot be used.
    case invalidSpec(value: String, reason: String)

    public var description: String {
        switch self {
        case let .io(file, reason): "\(file): \(reason)"
        case let .badMagic(file, expected, found): "\(file): wrong magic number \(found), expected \(expected)"
        case let .truncated(file, expected, actual): "\(file): truncated, needs \(expected) bytes but has \(actual)"
        case let .countMismatch(file, images, labels): "\(file): \(images) images but \(labels) labels"
        case let .unsupportedDType(file, dtype): "\(file): unsupported element type \(dtype)"
        case let .malformed(file, reason): "\(file): \(reason)"
        case let .missingDomain(root, domain): "dataset folder \(root) has no sub-folder for domain \"\(domain)\""
        case let .missingSplit(folder, split): "\(folder): no \(split) data (expected \(split).npz, \(split)-images.npy + \(split)-labels.npy, \(split)-images-idx3-ubyte[.gz] + \(split)-labels-idx1-ubyte[.gz], \(split).pkl\(split == "train" ? " or partitions/train_part0.pkl" : ""), or \(split).bin)"
        case let .invalidSpec(value, reason): "\"\(value)\": \(reason)"
        }
    }
}
