import Foundation

/// The committed fuzz corpus in `Tests/FuzzCorpus` (see its README) as files, and the time
/// budget of the fuzz loops: what the fuzz tests of `WireTests` and `FaultTests` share.
/// Each target's `FuzzCorpus` generates its own directories' files and says what they mean.
public enum FuzzCorpusStore {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("FuzzCorpus")

    /// Every `.bin` file of `directory`, sorted by name.
    public static func files(in directory: String) throws -> [(name: String, bytes: [UInt8])] {
        let dir = root.appendingPathComponent(directory)
        return try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".bin") }.sorted().map {
            ($0, Array(try Data(contentsOf: dir.appendingPathComponent($0))))
        }
    }

    /// `FEDKIT_WRITE_CORPUS=1` asks the corpus tests to rewrite their files.
    public static var rewriting: Bool { ProcessInfo.processInfo.environment["FEDKIT_WRITE_CORPUS"] == "1" }

    /// Replaces the `.bin` files of `directory` with `files`.
    public static func write(_ files: [(name: String, bytes: [UInt8])], to directory: String) throws {
        let dir = root.appendingPathComponent(directory)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for old in try FileManager.default.contentsOfDirectory(atPath: dir.path) where old.hasSuffix(".bin") {
            try FileManager.default.removeItem(at: dir.appendingPathComponent(old))
        }
        for (name, bytes) in files { try Data(bytes).write(to: dir.appendingPathComponent(name)) }
    }

    /// Seconds each fuzz loop runs (`FEDKIT_FUZZ_SECONDS`, default 10).
    public static var seconds: Double {
        ProcessInfo.processInfo.environment["FEDKIT_FUZZ_SECONDS"].flatMap(Double.init) ?? 10
    }
}
