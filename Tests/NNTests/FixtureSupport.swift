import Foundation
import XCTest
import Tensor
@testable import NN

/// A PyTorch reference case from `Fixtures/` (or the directory in `FEDKIT_FIXTURES`):
/// `{"name", "kind", "config", "tensors": {NAME: {"shape", "data"}}}`.
struct Fixture {
    let file: String
    let name: String
    let kind: String
    let config: [String: Any]
    let tensors: [String: (shape: [Int], data: [Double])]

    static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["FEDKIT_FIXTURES"], !dir.isEmpty {
            return URL(fileURLWithPath: dir)
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    }

    /// Every `*.json` in the fixture directory, sorted by file name.
    static func all() throws -> [Fixture] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".json") }.sorted()
        return try files.map { try load(directory.appendingPathComponent($0)) }
    }

    static func load(_ url: URL) throws -> Fixture {
        let root = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        var tensors: [String: ([Int], [Double])] = [:]
        for (k, v) in root["tensors"] as! [String: Any] {
            let t = v as! [String: Any]
            tensors[k] = ((t["shape"] as! [Any]).map { ($0 as! NSNumber).intValue },
                          (t["data"] as! [Any]).map { ($0 as! NSNumber).doubleValue })
        }
        return Fixture(file: url.lastPathComponent, name: root["name"] as? String ?? url.lastPathComponent,
                       kind: root["kind"] as! String, config: root["config"] as? [String: Any] ?? [:],
                       tensors: tensors.mapValues { (shape: $0.0, data: $0.1) })
    }

    func has(_ name: String) -> Bool { tensors[name] != nil }

    func tensor(_ name: String) -> Tensor {
        guard let t = tensors[name] else { fatalError("\(file): no tensor \(name)") }
        return try! Tensor(shape: t.shape, values: t.data.map { Float($0) })
    }

    func int(_ key: String) -> Int { (config[key] as! NSNumber).intValue }
    func float(_ key: String) -> Float { (config[key] as! NSNumber).floatValue }
    func bool(_ key: String) -> Bool { (config[key] as! NSNumber).boolValue }
    func labels(_ name: String = "labels") -> [Int] { tensors[name]!.data.map { Int($0) } }
}

/// Asserts |actual − expected| ≤ atol + rtol·|expected| elementwise, printing the
/// first mismatches and the largest difference when it fails.
func assertClose(_ actual: Tensor, _ expected: Tensor, _ what: String, atol: Float = 1e-4, rtol: Float = 1e-3,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        XCTFail("\(what): shape \(actual.shape) vs expected \(expected.shape)", file: file, line: line)
        return
    }
    var bad: [String] = []
    var maxDiff: Float = 0
    for i in 0..<actual.count {
        let a = actual[i], b = expected[i], d = abs(a - b)
        maxDiff = max(maxDiff, d.isNaN ? .infinity : d)
        if !(d <= atol + rtol * abs(b)) && bad.count < 5 { bad.append("[\(i)] \(a) vs \(b)") }
    }
    if !bad.isEmpty {
        XCTFail("\(what): max |diff| \(maxDiff); first mismatches: \(bad.joined(separator: ", "))", file: file, line: line)
    }
}
