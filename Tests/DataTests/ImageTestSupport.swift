import Foundation
import XCTest
@testable import Data

/// Fixtures written by `Fixtures/make_image_fixtures.py` (Pillow's decodes and
/// resizes, PNGs of every colour type), found next to this file.
enum ImageFixtures {
    static var directory: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    }

    static func path(_ name: String) -> String { directory + "/" + name }

    static func bytes(_ name: String) throws -> [UInt8] {
        [UInt8](try Foundation.Data(contentsOf: URL(fileURLWithPath: path(name))))
    }

    /// A JSON fixture's top-level object.
    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Foundation.Data(contentsOf: URL(fileURLWithPath: path(name)))) as! [String: Any]
    }
}

/// Bytes of a hexadecimal string ("00ff10…").
func bytes(hex: String) -> [UInt8] {
    let u = Array(hex.utf8)
    func nibble(_ c: UInt8) -> UInt8 { c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10 }
    return stride(from: 0, to: u.count - 1, by: 2).map { nibble(u[$0]) << 4 | nibble(u[$0 + 1]) }
}

/// Asserts two byte images agree within `tolerance` per value; on failure reports the
/// largest difference, where it is and how many values differ.
func assertPixels(_ actual: [UInt8], _ expected: [UInt8], tolerance: Int = 0, _ what: String,
                  file: StaticString = #filePath, line: UInt = #line) {
    guard actual.count == expected.count else {
        return XCTFail("\(what): \(actual.count) values, expected \(expected.count)", file: file, line: line)
    }
    var worst = 0, at = 0, differing = 0
    for i in 0..<actual.count {
        let d = abs(Int(actual[i]) - Int(expected[i]))
        if d > 0 { differing += 1 }
        if d > worst { worst = d; at = i }
    }
    XCTAssertLessThanOrEqual(worst, tolerance,
                             "\(what): max difference \(worst) at value \(at) (got \(actual[at]), expected \(expected[at])); \(differing) of \(actual.count) values differ",
                             file: file, line: line)
}

/// The largest per-value difference of two equally long byte arrays.
func maxDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
    zip(a, b).reduce(0) { max($0, abs(Int($1.0) - Int($1.1))) }
}

/// Asserts `body` throws a `DataError` whose text names `file` and contains `words` (every reader's tests use it).
func assertImageError(_ file: String, _ words: String, _ body: () throws -> Any,
                      line: UInt = #line) {
    XCTAssertThrowsError(try body(), line: line) { error in
        let text = "\(error)"
        XCTAssertTrue(error is DataError, "not a DataError: \(text)", line: line)
        XCTAssertTrue(text.contains(file), "error does not name \(file): \(text)", line: line)
        XCTAssertTrue(text.contains(words), "error does not say \"\(words)\": \(text)", line: line)
    }
}

/// libjpeg-turbo's command-line tools (Debian's libjpeg-turbo-progs), run as the
/// reference decoder.
enum JPEGTools {
    /// The path of `tool`, or a skip explaining how to get it.
    static func find(_ tool: String) throws -> String {
        for dir in ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"] where FileManager.default.isExecutableFile(atPath: "\(dir)/\(tool)") {
            return "\(dir)/\(tool)"
        }
        throw XCTSkip("\(tool) is not installed (Debian: apt-get install libjpeg-turbo-progs; scripts/setup.sh --test installs it)")
    }

    /// Runs `tool` with `arguments`, returning its standard output; fails on a non-zero exit.
    static func run(_ tool: String, _ arguments: [String]) throws -> [UInt8] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try find(tool))
        process.arguments = arguments
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NSError(domain: "JPEGTools", code: Int(process.terminationStatus),
                          userInfo: [NSLocalizedDescriptionKey: "\(tool) \(arguments.joined(separator: " ")) failed: \(message)"])
        }
        return [UInt8](data)
    }

    /// `djpeg -pnm` of the JPEG at `path`, parsed.
    static func djpeg(_ path: String) throws -> DecodedImage {
        try parsePNM(try run("djpeg", ["-pnm", path]))
    }
}

/// A binary PGM (P5) or PPM (P6) with maxval 255.
func parsePNM(_ b: [UInt8]) throws -> DecodedImage {
    var p = 0
    func token() -> String {
        while p < b.count, b[p] == 0x20 || b[p] == 0x0A || b[p] == 0x0D || b[p] == 0x09 { p += 1 }
        let start = p
        while p < b.count, !(b[p] == 0x20 || b[p] == 0x0A || b[p] == 0x0D || b[p] == 0x09) { p += 1 }
        return String(decoding: b[start..<p], as: UTF8.self)
    }
    let magic = token(), width = Int(token()) ?? 0, height = Int(token()) ?? 0, maxval = token()
    p += 1
    guard magic == "P5" || magic == "P6", maxval == "255" else { throw NSError(domain: "PNM", code: 1) }
    let channels = magic == "P5" ? 1 : 3
    return DecodedImage(width: width, height: height, channels: channels, pixels: Array(b[p..<(p + width * height * channels)]))
}

/// A binary PGM or PPM of `image`.
func pnm(_ image: DecodedImage) -> [UInt8] {
    Array("\(image.channels == 1 ? "P5" : "P6")\n\(image.width) \(image.height)\n255\n".utf8) + image.pixels
}
