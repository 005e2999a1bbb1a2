import Foundation
import XCTest

/// The JPEG path end to end: `fed-sim export-data` writes digits5 as an image folder of
/// JPEGs, and one round of AlexNet trains on it through fed-sim and the real daemons;
/// training samples are flipped and rotated (--augment); a class-layout folder is split by
/// --test-split in every client.
final class ImageFolderFederationTests: XCTestCase {
    var binaries: URL { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent() }

    func run(_ tool: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let path = binaries.appendingPathComponent(tool).path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("\(path) is not built; run `swift build` first") }
        let p = Process()
        let pipe = Pipe()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = arguments
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return (p.terminationStatus, text)
    }

    func testOneRoundOfAlexNetOnExportedJPEGFolders() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-jpegfed-\(getpid())").path
        try? FileManager.default.removeItem(atPath: base)
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: base) }
        let folder = base + "/digits-jpeg"
        let export = try run("fed-sim", ["export-data", folder, "--data", "digits5:60:20", "--domains", "mnist,svhn", "--size", "64"])
        XCTAssertEqual(export.status, 0, export.output)
        XCTAssertTrue(export.output.contains("wrote \(folder): 160 JPEG files, 2 domains (mnist, svhn) at 3×64×64"), export.output)
        let again = try run("fed-sim", ["export-data", folder])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains("already exists"), again.output)

        let out = base + "/sim"
        let sim = try run("fed-sim", ["run", "--strategy", "fedbn", "--model", "alexnet", "--widths", "4,4,8,8,8,16,16",
                                      "--data", folder, "--rounds", "1", "--data-fraction", "1", "--batch", "8", "--augment", "flip,rotate:30",
                                      "--round-timeout", "120", "--out", out])
        XCTAssertEqual(sim.status, 0, sim.output)
        let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(out)/summary.json"))) as? [String: Any])
        let fedbn = try XCTUnwrap((summary["strategies"] as? [String: Any])?["fedbn"] as? [String: Any])
        XCTAssertEqual(Set(try XCTUnwrap(fedbn["domains"] as? [String: Any]).keys), ["mnist", "svhn"])
        XCTAssertFalse(sim.output.contains("exited"), sim.output)

        // A class-layout folder (svhn's train images only): each client splits it with --test-split.
        let classes = base + "/classes"
        try FileManager.default.createDirectory(atPath: classes, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(folder)/svhn/train", toPath: "\(classes)/svhn")
        let c = "\(out)/certs"
        let check = try run("fed-client", ["--check", "--server", "127.0.0.1:1", "--data", "\(classes):svhn", "--test-split", "0.5",
                                           "--model", "alexnet", "--cert", "\(c)/svhn-0.crt", "--key", "\(c)/svhn-0.key", "--ca", "\(c)/ca.crt"])
        XCTAssertEqual(check.status, 0, check.output)
        XCTAssertTrue(check.output.contains("svhn: 30 training and 30 test examples at 3×64×64"), check.output)
        let bad = try run("fed-client", ["--check", "--server", "127.0.0.1:1", "--data", "\(classes):svhn", "--test-split", "1.5",
                                         "--cert", "\(c)/svhn-0.crt", "--key", "\(c)/svhn-0.key", "--ca", "\(c)/ca.crt"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("--test-split (1.5) must be in [0, 1)"), bad.output)
        let badAugment = try run("fed-client", ["--check", "--server", "127.0.0.1:1", "--data", "\(classes):svhn", "--augment", "blur",
                                                "--cert", "\(c)/svhn-0.crt", "--key", "\(c)/svhn-0.key", "--ca", "\(c)/ca.crt"])
        XCTAssertNotEqual(badAugment.status, 0)
        XCTAssertTrue(badAugment.output.contains("\"blur\": expected none, or a comma-separated list of flip and rotate:D"), badAugment.output)
        let clientLog = (try? String(contentsOfFile: "\(out)/fedbn/mnist-0.log", encoding: .utf8)) ?? ""
        XCTAssertFalse(clientLog.contains("error"), clientLog)
    }
}
