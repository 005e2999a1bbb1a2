import Foundation
import XCTest

/// Every model of the zoo trains and evaluates through the real daemons: fed-sim brings each
/// client's digits to the model's input (AlexNet 3×64×64, the ResNets 3×32×32).
final class ZooModelTests: XCTestCase {
    var binaries: URL { URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent() }

    func simulate(_ arguments: [String], name: String) throws -> (status: Int32, log: String, out: String) {
        let sim = binaries.appendingPathComponent("fed-sim").path
        guard FileManager.default.isExecutableFile(atPath: sim) else { throw XCTSkip("\(sim) is not built; run `swift build` first") }
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("fedkit-zoo-\(name)-\(getpid())").path
        try? FileManager.default.removeItem(atPath: out)
        let log = out + ".log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: sim)
        p.arguments = arguments + ["--out", out]
        p.standardOutput = h
        p.standardError = h
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "", out)
    }

    func testOneRoundOfEveryZooModelThroughTheDaemons() throws {
        for (model, widths, strategy) in [("digit-cnn", "4,4,8,16,16", "fedbn"), ("alexnet", "4,4,8,8,8,16,16", "fedavg"),
                                         ("resnet8", "4,4,8", "fedbn"), ("resnet20", "4,4,8", "fedwon")] {
            let (status, log, out) = try simulate(["run", "--strategy", strategy, "--model", model, "--widths", widths, "--rounds", "1",
                                                   "--domains", "mnist,svhn", "--train-count", "100", "--test-count", "20",
                                                   "--round-timeout", "120"], name: model)
            defer { try? FileManager.default.removeItem(atPath: out); try? FileManager.default.removeItem(atPath: out + ".log") }
            XCTAssertEqual(status, 0, "\(model): \(log)")
            let data = try Data(contentsOf: URL(fileURLWithPath: "\(out)/summary.json"))
            let summary = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
            let strategies = try XCTUnwrap(summary["strategies"] as? [String: Any], model)
            let run = try XCTUnwrap(strategies[strategy] as? [String: Any], model)
            let domains = try XCTUnwrap(run["domains"] as? [String: Any], model)
            XCTAssertEqual(Set(domains.keys), ["mnist", "svhn"], model)
            XCTAssertEqual(run["rounds"] as? Int, 1, model)
            // Both clients answered: no update refused, nobody dropped, and the clients saw the model's own input.
            XCTAssertFalse(log.contains("exited"), "\(model): \(log)")
            let clientLog = (try? String(contentsOfFile: "\(out)/\(strategy)/mnist-0.log", encoding: .utf8)) ?? ""
            XCTAssertFalse(clientLog.contains("expected images of shape"), "\(model): \(clientLog)")
            if model == "alexnet" { try checkClient(certificates: "\(out)/certs") }
        }
    }

    /// `fed-client --check` brings the data to the model's input, and refuses an input AlexNet cannot
    /// take and data with more classes than the model outputs, naming both values.
    func checkClient(certificates c: String) throws {
        let client = binaries.appendingPathComponent("fed-client").path
        for (extra, expected) in [
            (["--model", "alexnet", "--input-size", "96"], "mnist: 100 training and 20 test examples at 3×96×96, alexnet/batch"),
            (["--model", "alexnet", "--input-size", "32"], "--input-size (32) must be at least 64 for alexnet"),
            (["--classes", "5"], "the data of mnist has 10 classes but the model (digit-cnn, --classes 5) outputs 5"),
        ] {
            let p = Process()
            let pipe = Pipe()
            p.executableURL = URL(fileURLWithPath: client)
            p.arguments = ["--check", "--server", "127.0.0.1:1", "--data", "digits5:mnist", "--train-count", "100", "--test-count", "20",
                           "--cert", "\(c)/mnist-0.crt", "--key", "\(c)/mnist-0.key", "--ca", "\(c)/ca.crt"] + extra
            p.standardOutput = pipe
            p.standardError = pipe
            try p.run()
            let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertTrue(text.contains(expected), "\(extra): \(text)")
            XCTAssertEqual(p.terminationStatus == 0, expected.hasPrefix("mnist:"), "\(extra): \(text)")
        }
    }

    /// A model that cannot take the data is refused by fed-sim before any process starts, naming the value.
    func testAnAlexNetInputBelow64IsRefusedNamingTheValue() throws {
        let (status, log, out) = try simulate(["run", "--model", "alexnet", "--input-size", "32"], name: "small")
        XCTAssertNotEqual(status, 0)
        XCTAssertTrue(log.contains("--input-size (32) must be at least 64 for --model alexnet"), log)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
        try? FileManager.default.removeItem(atPath: out + ".log")
    }
}
