// Text in pickles: NumPy's unicode (`<U`) and byte-string (`|S`) arrays and object
// arrays of `str`, as FedBN keeps the image lists of Office-Caltech-10 and DomainNet
// (a pickled `(paths, labels)` pair). Read as data; nothing in a pickle is run.

extension Pickle {
    /// Loads a pickle holding two lists of text of equal length, as FedBN keeps its
    /// Office-Caltech-10 and DomainNet splits: a tuple or list `(paths, labels)` of
    /// NumPy unicode arrays (or byte-string arrays, or lists of `str`).
    /// - Throws: `DataError` naming the file and what is wrong.
    public static func loadTextPairs(_ path: String) throws -> (first: [String], second: [String]) {
        var machine = Machine(bytes: try readFile(path), file: path)
        let top = try machine.run()
        func texts(_ v: Value, _ what: String) throws -> [String] {
            switch v {
            case .array(let box) where box.strings != nil: return box.strings!
            case .list(let items):
                return try items.map {
                    guard case .string(let s) = $0 else { throw DataError.malformed(file: path, reason: "\(what) holds \($0.kind), expected str") }
                    return s
                }
            default: throw DataError.malformed(file: path, reason: "\(what) is \(v.kind), expected an array of text")
            }
        }
        let items: [Value]
        switch top {
        case .tuple(let t), .list(let t): items = t
        default: throw DataError.malformed(file: path, reason: "holds \(top.kind); expected (paths, labels), two arrays of text")
        }
        guard items.count == 2 else {
            throw DataError.malformed(file: path, reason: "holds \(items.count) objects; expected 2, (paths, labels)")
        }
        return try check((texts(items[0], "the first object"), texts(items[1], "the second object")), path)
    }

    static func check(_ pair: ([String], [String]), _ path: String) throws -> (first: [String], second: [String]) {
        guard pair.0.count == pair.1.count else { throw DataError.countMismatch(file: path, images: pair.0.count, labels: pair.1.count) }
        return pair
    }
}

extension Pickle.Machine {
    /// The text of a one-dimensional unicode, byte-string or `str`-object array; nil
    /// for any other dtype. Trailing NULs (NumPy's padding) are dropped.
    func strings(_ dtype: Pickle.DType, _ dims: [Pickle.Value], _ data: Pickle.Value) throws -> [String]? {
        var d = Substring(dtype.descr)
        let order = d.first.flatMap { "<>|=".contains($0) ? $0 : nil }
        if order != nil { d = d.dropFirst() }
        guard let kind = d.first, "USO".contains(kind) else { return nil }
        guard dims.count == 1, case .int(let n) = dims[0], n >= 0 else {
            throw bad("a text array of shape \(dims.map(\.kind)); expected one dimension")
        }
        if kind == "O" {
            guard case .list(let items) = data, items.count == n else {
                throw DataError.unsupportedDType(file: file, dtype: "'O' (an array of Python objects other than str)")
            }
            return try items.map { item in
                guard case .string(let text) = item else {
                    throw DataError.unsupportedDType(file: file, dtype: "'O' holding \(item.kind); only str is read")
                }
                return text
            }
        }
        guard let width = Int(d.dropFirst()), width >= 0, case .bytes(let bytes) = data else {
            throw bad("a text array of type '\(dtype.descr)' without its bytes")
        }
        let item = kind == "U" ? 4 * width : width
        guard bytes.count == n * item else {
            throw DataError.malformed(file: file, reason: "a text array of \(n) × '\(dtype.descr)' holds \(bytes.count) bytes")
        }
        guard kind == "S" || order != ">" else {
            throw DataError.unsupportedDType(file: file, dtype: "'\(dtype.descr)' (big-endian text)")
        }
        var out = [String]()
        out.reserveCapacity(n)
        var at = bytes.startIndex
        for _ in 0..<n {
            let field = bytes[at ..< at + item]
            at += item
            if kind == "S" {
                out.append(String(decoding: field.prefix { $0 != 0 }, as: UTF8.self))
                continue
            }
            var scalars = String.UnicodeScalarView()
            var k = field.startIndex
            while k < field.endIndex {
                let v = UInt32(field[k]) | UInt32(field[k + 1]) << 8 | UInt32(field[k + 2]) << 16 | UInt32(field[k + 3]) << 24
                k += 4
                if v == 0 { break }
                guard let u = Unicode.Scalar(v) else { throw bad("a text array holding the invalid code point \(v)") }
                scalars.append(u)
            }
            out.append(String(scalars))
        }
        return out
    }
}
