// NumPy arrays in Python pickles, as the FedBN reference code keeps Digits-Five
// (`train.pkl`, `test.pkl`, `partitions/train_partK.pkl`: a pickled tuple
// `(images, labels)` of two arrays).
//
// A pickle is a program for a small stack machine. This reads the part of it that
// NumPy arrays need (protocols 2 to 5, as `pickle.dump` writes with NumPy 1.x or
// 2.x) and runs nothing: the only callables it knows are NumPy's array and dtype
// constructors, and any other global is refused by name.

/// Reads image datasets stored as pickled NumPy arrays.
public enum Pickle {
    /// Loads a pickle holding images and labels: a tuple or list `(images, labels)`,
    /// or a dict with keys `x`/`y` or `images`/`labels`. Arrays as `NumPy.load`
    /// takes them (uint8 or float images, (N, H, W), (N, H, W, C) or (N, C, H, W);
    /// integer labels).
    /// - Throws: `DataError` naming the file and what is wrong.
    public static func load(_ path: String, domain: String, shape: ImageShape? = .digits,
                            classCount: Int? = nil) throws -> Dataset {
        let (x, y) = try arrays(try readFile(path), file: path)
        return try NumPy.dataset(images: x, labels: y, imagesFile: path, labelsFile: path,
                                 domain: domain, shape: shape, classCount: classCount)
    }

    /// The image and label arrays of a pickle's bytes.
    static func arrays(_ bytes: [UInt8], file: String) throws -> (images: NumPy.Array, labels: NumPy.Array) {
        var machine = Machine(bytes: bytes, file: file)
        let top = try machine.run()
        func array(_ v: Value, _ what: String) throws -> NumPy.Array {
            if case .array(let a) = v, a.strings != nil {
                throw DataError.unsupportedDType(file: file, dtype: "of text (an array of Python objects or strings) in \(what); expected numbers")
            }
            guard case .array(let a) = v, let array = a.array else {
                throw DataError.malformed(file: file, reason: "\(what) is \(v.kind), expected a NumPy array")
            }
            return array
        }
        switch top {
        case .tuple(let items), .list(let items):
            guard items.count == 2 else {
                throw DataError.malformed(file: file, reason: "holds \(items.count) objects; expected 2, (images, labels)")
            }
            return (try array(items[0], "the first object"), try array(items[1], "the second object"))
        case .dict(let pairs):
            func find(_ keys: [String]) -> Value? {
                for k in keys { if let p = pairs.first(where: { if case .string(k) = $0.0 { true } else { false } }) { return p.1 } }
                return nil
            }
            guard let x = find(["x", "images"]), let y = find(["y", "labels"]) else {
                throw DataError.malformed(file: file, reason: "holds a dict without x and y, or images and labels")
            }
            return (try array(x, "x"), try array(y, "y"))
        default:
            throw DataError.malformed(file: file, reason: "holds \(top.kind); expected (images, labels)")
        }
    }

    /// A NumPy dtype under construction: `numpy.dtype('u1', …)`, then its byte order from BUILD.
    final class DType {
        let base: String
        var byteOrder = "="
        init(base: String) { self.base = base }
        var descr: String { base.first.map { "<>|=".contains($0) } == true ? base : byteOrder + base }
    }

    /// An array under construction: `_reconstruct` makes it empty, BUILD fills it
    /// with numbers (`array`) or, for NumPy's unicode (`<U`), byte-string (`|S`) and
    /// object arrays of `str`, with text (`strings`).
    final class ArrayBox {
        var array: NumPy.Array?
        var strings: [String]?
        init(_ array: NumPy.Array? = nil) { self.array = array }
    }

    /// What the machine's stack holds. Objects BUILD changes are classes, so that every
    /// reference to them (the memo's too) sees the change, as in Python.
    indirect enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String), bytes(ArraySlice<UInt8>)
        case tuple([Value]), list([Value]), dict([(Value, Value)])
        case global(String)
        case dtype(DType)
        case array(ArrayBox)
        case mark

        var kind: String {
            switch self {
            case .none: "None"
            case .bool: "a bool"
            case .int: "an int"
            case .float: "a float"
            case .string: "a str"
            case .bytes: "bytes"
            case .tuple(let t): "a tuple of \(t.count)"
            case .list(let l): "a list of \(l.count)"
            case .dict: "a dict"
            case .global(let g): g
            case .dtype: "a dtype"
            case .array: "an array"
            case .mark: "a mark"
            }
        }
    }

    struct Machine {
        let bytes: [UInt8]
        let file: String
        var at = 0
        var stack: [Value] = []
        var memo: [Int: Value] = [:]
        /// Tuples, lists and dicts made so far: NumPy arrays need a few each, and a cap keeps
        /// a hostile pickle from nesting values deeper than the stack can free.
        var containers = 0
        static let maximumContainers = 10_000

        init(bytes: [UInt8], file: String) {
            self.bytes = bytes
            self.file = file
        }

        func bad(_ reason: String) -> DataError { .malformed(file: file, reason: "not a pickle of NumPy arrays: \(reason)") }

        mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, n <= bytes.count - at else {
                throw DataError.truncated(file: file, expected: at + max(n, 0), actual: bytes.count)
            }
            defer { at += n }
            return bytes[at..<at + n]
        }

        mutating func uint(_ n: Int) throws -> Int {
            let s = try take(n)
            var v: UInt64 = 0
            for (k, b) in s.enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
            guard v <= UInt64(Int.max) else { throw bad("a length of \(v) bytes") }
            return Int(v)
        }

        mutating func line() throws -> String {
            guard let end = bytes[at...].firstIndex(of: 0x0A) else { throw DataError.truncated(file: file, expected: bytes.count + 1, actual: bytes.count) }
            defer { at = end + 1 }
            return String(decoding: bytes[at..<end], as: UTF8.self)
        }

        mutating func pop() throws -> Value {
            guard let v = stack.popLast() else { throw bad("the stack is empty at byte \(at)") }
            return v
        }

        /// The values pushed since the last mark, which is removed.
        mutating func popToMark() throws -> [Value] {
            guard let m = stack.lastIndex(where: { if case .mark = $0 { true } else { false } }) else {
                throw bad("no mark at byte \(at)")
            }
            let items = Array(stack[(m + 1)...])
            stack.removeSubrange(m...)
            return items
        }

        mutating func run() throws -> Value {
            while true {
                let start = at
                let op = try take(1).first!
                if [0x29, 0x74, 0x85, 0x86, 0x87, 0x5D, 0x6C, 0x7D].contains(op) {
                    containers += 1
                    guard containers <= Self.maximumContainers else { throw bad("more than \(Self.maximumContainers) tuples, lists and dicts") }
                }
                switch op {
                case 0x80: _ = try take(1)                                   // PROTO
                case 0x95: _ = try take(8)                                   // FRAME
                case 0x2E:                                                   // STOP
                    let v = try pop()
                    return v
                case 0x28: stack.append(.mark)                               // MARK
                case 0x29: stack.append(.tuple([]))                          // EMPTY_TUPLE
                case 0x74: stack.append(.tuple(try popToMark()))             // TUPLE
                case 0x85: stack.append(.tuple([try pop()]))                 // TUPLE1
                case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))
                case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))
                case 0x5D: stack.append(.list([]))                           // EMPTY_LIST
                case 0x6C: stack.append(.list(try popToMark()))              // LIST
                case 0x61:                                                   // APPEND
                    let v = try pop()
                    guard case .list(var l) = try pop() else { throw bad("APPEND to a non-list at byte \(start)") }
                    l.append(v); stack.append(.list(l))
                case 0x65:                                                   // APPENDS
                    let items = try popToMark()
                    guard case .list(var l) = try pop() else { throw bad("APPENDS to a non-list at byte \(start)") }
                    l += items; stack.append(.list(l))
                case 0x7D: stack.append(.dict([]))                           // EMPTY_DICT
                case 0x73:                                                   // SETITEM
                    let v = try pop(), k = try pop()
                    guard case .dict(var d) = try pop() else { throw bad("SETITEM on a non-dict at byte \(start)") }
                    d.append((k, v)); stack.append(.dict(d))
                case 0x75:                                                   // SETITEMS
                    let items = try popToMark()
                    guard items.count % 2 == 0, case .dict(var d) = try pop() else { throw bad("SETITEMS on a non-dict at byte \(start)") }
                    for i in stride(from: 0, to: items.count, by: 2) { d.append((items[i], items[i + 1])) }
                    stack.append(.dict(d))
                case 0x4E: stack.append(.none)                               // NONE
                case 0x88: stack.append(.bool(true))                         // NEWTRUE
                case 0x89: stack.append(.bool(false))                        // NEWFALSE
                case 0x4B: stack.append(.int(try uint(1)))                   // BININT1
                case 0x4D: stack.append(.int(try uint(2)))                   // BININT2
                case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
                case 0x8A:                                                   // LONG1
                    let n = try uint(1)
                    guard n <= 8 else { throw bad("an integer of \(n) bytes") }
                    let s = try take(n)
                    var v: UInt64 = 0
                    for (k, b) in s.enumerated() { v |= UInt64(b) << (8 * UInt64(k)) }
                    if n > 0 && n < 8 && s.last! & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }  // sign-extend
                    stack.append(.int(Int(Int64(bitPattern: v))))
                case 0x47:                                                   // BINFLOAT (big-endian)
                    var v: UInt64 = 0
                    for b in try take(8) { v = v << 8 | UInt64(b) }
                    stack.append(.float(Double(bitPattern: v)))
                case 0x8C: stack.append(.string(try text(try uint(1))))      // SHORT_BINUNICODE
                case 0x58: stack.append(.string(try text(try uint(4))))      // BINUNICODE
                case 0x8D: stack.append(.string(try text(try uint(8))))      // BINUNICODE8
                case 0x43, 0x55: stack.append(.bytes(try take(try uint(1)))) // SHORT_BINBYTES, SHORT_BINSTRING
                case 0x42, 0x54: stack.append(.bytes(try take(try uint(4)))) // BINBYTES, BINSTRING
                case 0x8E, 0x96: stack.append(.bytes(try take(try uint(8)))) // BINBYTES8, BYTEARRAY8
                case 0x97, 0x98:                                             // NEXT_BUFFER, READONLY_BUFFER
                    throw bad("it keeps its data out of band (pickle protocol 5 with buffer_callback); save it with pickle.dump")
                case 0x63:                                                   // GLOBAL "module\nname\n"
                    let module = try line(), name = try line()
                    stack.append(.global(module + "." + name))
                case 0x93:                                                   // STACK_GLOBAL
                    guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                        throw bad("STACK_GLOBAL without two names at byte \(start)")
                    }
                    stack.append(.global(module + "." + name))
                case 0x94: memo[memo.count] = stack.last                      // MEMOIZE
                case 0x71: memo[try uint(1)] = stack.last                     // BINPUT
                case 0x72: memo[try uint(4)] = stack.last                     // LONG_BINPUT
                case 0x68, 0x6A:                                              // BINGET, LONG_BINGET
                    let k = try uint(op == 0x68 ? 1 : 4)
                    guard let v = memo[k] else { throw bad("memo entry \(k) is not set (byte \(start))") }
                    stack.append(v)
                case 0x52:                                                    // REDUCE
                    let args = try pop(), callable = try pop()
                    guard case .global(let name) = callable, case .tuple(let a) = args else {
                        throw bad("REDUCE of \(callable.kind) at byte \(start)")
                    }
                    stack.append(try call(name, a))
                case 0x62:                                                    // BUILD
                    let state = try pop()
                    guard let target = stack.last else { throw bad("BUILD with nothing to build at byte \(start)") }
                    try build(target, state)
                default:
                    throw bad(String(format: "opcode 0x%02x at byte %d is not one NumPy arrays use", op, start))
                }
                if stack.count > 1_000_000 { throw bad("more than a million objects on the stack") }
            }
        }

        mutating func text(_ n: Int) throws -> String {
            String(decoding: try take(n), as: UTF8.self)
        }

        static let reconstruct: Set<String> = ["numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"]
        static let fromBuffer: Set<String> = ["numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer"]

        /// The few callables NumPy arrays are made with; anything else is refused, never run.
        func call(_ name: String, _ args: [Value]) throws -> Value {
            if Self.reconstruct.contains(name) {
                return .array(ArrayBox())  // filled by BUILD
            }
            if name == "numpy.dtype" {
                guard case .string(let base)? = args.first else { throw bad("numpy.dtype of \(args.first?.kind ?? "nothing")") }
                return .dtype(DType(base: base))
            }
            if Self.fromBuffer.contains(name) {
                guard args.count == 4, case .bytes(let data) = args[0], case .dtype(let dtype) = args[1],
                      case .tuple(let dims) = args[2], case .string(let order) = args[3] else {
                    throw bad("\(name) called with \(args.map(\.kind))")
                }
                if let strings = try strings(dtype, dims, args[0]) {
                    let box = ArrayBox()
                    box.strings = strings
                    return .array(box)
                }
                return .array(ArrayBox(try array(dtype, dims, fortran: order == "F", data)))
            }
            if name == "_codecs.encode" {  // protocol 2 keeps bytes as a latin-1 str
                guard case .string(let s)? = args.first else { throw bad("_codecs.encode of \(args.first?.kind ?? "nothing")") }
                var out = [UInt8]()
                out.reserveCapacity(s.unicodeScalars.count)
                for u in s.unicodeScalars {
                    guard u.value < 256 else { throw bad("_codecs.encode of a character above latin-1") }
                    out.append(UInt8(u.value))
                }
                return .bytes(out[...])
            }
            throw bad("it calls \(name), which is not a NumPy array constructor (only NumPy arrays are read; nothing is run)")
        }

        func build(_ target: Value, _ state: Value) throws {
            switch target {
            case .dtype(let d):
                // (version, byte order, subarray, names, fields, itemsize, alignment, flags)
                guard case .tuple(let s) = state, s.count >= 2, case .string(let order) = s[1] else {
                    throw bad("a dtype state of \(state.kind)")
                }
                d.byteOrder = order
            case .array(let box):
                // (version, shape, dtype, is_fortran, raw data)
                guard case .tuple(let s) = state, s.count == 5, case .tuple(let dims) = s[1], case .dtype(let dtype) = s[2],
                      case .bool(let fortran) = s[3] else {
                    throw bad("an array state of \(state.kind)")
                }
                if let strings = try strings(dtype, dims, s[4]) {
                    box.strings = strings
                    return
                }
                guard case .bytes(let data) = s[4] else {
                    throw DataError.unsupportedDType(file: file, dtype: "'\(dtype.descr)' (an array of Python objects)")
                }
                box.array = try array(dtype, dims, fortran: fortran, data)
            default:
                throw bad("BUILD of \(target.kind)")
            }
        }

        func array(_ dtype: DType, _ dims: [Value], fortran: Bool, _ data: ArraySlice<UInt8>) throws -> NumPy.Array {
            guard let type = NumPy.DType(descr: dtype.descr) else {
                throw DataError.unsupportedDType(file: file, dtype: "'\(dtype.descr)'")
            }
            var shape = [Int]()
            for d in dims {
                guard case .int(let n) = d, n >= 0 else { throw bad("an array dimension of \(d.kind)") }
                shape.append(n)
            }
            let (count, overflow) = shape.reduce((1, false)) { acc, n in
                let (p, o) = acc.0.multipliedReportingOverflow(by: n)
                return (p, acc.1 || o)
            }
            let (bytes, tooMany) = count.multipliedReportingOverflow(by: type.size)
            guard !overflow, !tooMany, bytes == data.count else {
                throw DataError.malformed(file: file, reason: "an array of shape \(shape) and type '\(dtype.descr)' holds \(data.count) bytes")
            }
            guard !fortran || shape.filter({ $0 > 1 }).count <= 1 else {
                throw DataError.malformed(file: file, reason: "an array of shape \(shape) is in Fortran order; save np.ascontiguousarray(it)")
            }
            return NumPy.Array(dtype: type, shape: shape, data: data)
        }
    }
}
