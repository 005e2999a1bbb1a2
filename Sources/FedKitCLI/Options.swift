import ArgumentParser
import Data
import Federated
import Foundation
import Logging
import NN
import Tensor
import Transport

extension Norm: ExpressibleByArgument {}
extension Architecture: ExpressibleByArgument {}
extension StrategyKind: ExpressibleByArgument {}
extension AggregationPrecision: ExpressibleByArgument {}

/// Certificate files of one federation member.
public struct TLSOptions: ParsableArguments {
    @Option(help: "PEM certificate of this member (signed by the federation CA).")
    public var cert: String?
    @Option(help: "PEM private key of --cert.")
    public var key: String?
    @Option(help: "PEM certificate of the federation CA.")
    public var ca: String?
    public init() {}

    /// Loads the three files (from flags or the config file) and checks them against each
    /// other for `role` (see `Credentials.check`), logging its warnings; a server logs the
    /// names its certificate covers.
    public func credentials(_ config: ConfigFile, role: Credentials.Role, logger: Logger) throws -> (credentials: Credentials, expires: Date) {
        guard let cert = try config.resolve(cert, "cert"), let key = try config.resolve(key, "key"),
              let ca = try config.resolve(ca, "ca") else {
            throw ValidationError("--cert, --key and --ca are required: FedKit only speaks mutual TLS (create them with cluster/certs.sh)")
        }
        return try Self.load(cert: cert, key: key, ca: ca, role: role, logger: logger)
    }

    /// Loads and checks one member's files; errors name the flags and files.
    /// - Returns: the credentials, and when the first certificate involved expires.
    public static func load(cert: String, key: String, ca: String, role: Credentials.Role, logger: Logger) throws -> (credentials: Credentials, expires: Date) {
        let credentials: Credentials, check: Credentials.Check
        do {
            credentials = try Credentials.load(certificateFile: cert, keyFile: key, caFile: ca)
            check = try Credentials.check(certificateFile: cert, keyFile: key, caFile: ca, role: role)
        } catch {
            throw ValidationError("cannot use TLS credentials (--cert \(cert), --key \(key), --ca \(ca)): \(error)")
        }
        for warning in check.warnings { logger.warning("\(warning)") }
        if role == .server, !check.names.isEmpty {
            logger.info("server certificate covers \(check.names.joined(separator: ", ")): clients must dial one of these")
        }
        return (credentials, check.expires)
    }
}

/// The model every member of a federation must agree on.
public struct ModelOptions: ParsableArguments {
    @Option(help: "Model: \(Architecture.allCases.map(\.rawValue).joined(separator: ", ")).")
    public var model: Architecture?
    @Option(help: "Normalization: batch, group, layer or none (default: none for fedwon, batch otherwise).")
    public var norm: Norm?
    @Option(help: "Comma-separated layer widths (default: the architecture's standard widths).")
    public var widths: String?
    @Option(help: "GroupNorm groups (--norm group).")
    public var groups: Int?
    @Option(help: "Number of classes.")
    public var classes: Int?
    @Option(help: "Seed of the model's initialization.")
    public var modelSeed: UInt64?
    @Option(help: "Height and width of the model's square input; every client's images are brought to it (default: the architecture's own, digit-cnn 28, alexnet 64, resnet 32).")
    public var inputSize: Int?
    public init() {}

    public func spec(strategy: StrategyKind, _ config: ConfigFile) throws -> ModelSpec {
        let arch = try Architecture(rawValue: config.resolve(model?.rawValue, "model", Architecture.digitCNN.rawValue))
        guard let arch else { throw ValidationError("--model must be one of \(Architecture.allCases.map(\.rawValue))") }
        let normName = try config.resolve(norm?.rawValue, "norm", strategy.defaultNorm.rawValue)
        guard let n = Norm(rawValue: normName) else { throw ValidationError("--norm (\(normName)) must be one of batch, group, layer, none") }
        var w: [Int]?
        if let text = try config.resolve(widths, "widths") {
            let parsed = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard parsed.allSatisfy({ $0 != nil && $0! > 0 }) else { throw ValidationError("--widths (\(text)) must be comma-separated positive integers") }
            w = parsed.map { $0! }
        }
        let size = try config.resolve(inputSize, "input-size", ModelSpec.defaultInputSize(arch))
        if arch == .alexnet && size < 64 { throw ValidationError("--input-size (\(size)) must be at least 64 for alexnet (its input is 3×S×S with S ≥ 64)") }
        guard size >= 1 else { throw ValidationError("--input-size (\(size)) must be a positive number of pixels") }
        return ModelSpec(architecture: arch, norm: n, classes: try config.resolve(classes, "classes", 10), inputSize: size, widths: w,
                         groups: try config.resolve(groups, "groups", 32), seed: try config.resolve(modelSeed, "model-seed", 0))
    }

    /// The images the model takes, C×S×S: what every client's data is brought to.
    public static func inputShape(_ spec: ModelSpec) -> ImageShape {
        ImageShape(channels: spec.inputChannels, height: spec.inputSize, width: spec.inputSize)
    }
}

/// Logging flags shared by the daemons.
public struct LoggingOptions: ParsableArguments {
    @Option(help: "Log format: text or json.")
    public var logFormat: String = "text"
    @Option(help: "Log level: trace, debug, info, notice, warning, error.")
    public var logLevel: String = "info"
    @Option(help: "OpenBLAS threads for training (default 1: several BLAS threads on a small shared machine run slower).")
    public var threads: Int = 1
    public init() {}

    public func validate() throws {
        guard ["text", "json"].contains(logFormat) else { throw ValidationError("--log-format (\(logFormat)) must be text or json") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level (\(logLevel)) must be one of trace, debug, info, notice, warning, error") }
        guard threads >= 1 else { throw ValidationError("--threads (\(threads)) must be at least 1") }
    }

    /// Installs the log handler (once per process) and returns a logger labelled `label`.
    public func bootstrap(_ label: String) -> Logger {
        let json = logFormat == "json"
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var h = LineLogHandler(label: label, json: json)
            h.logLevel = level
            return h
        }
        BLAS.setThreads(threads)
        return Logger(label: label)
    }
}

/// One line per log record on standard error, as text or JSON.
public struct LineLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    let label: String
    let json: Bool

    public init(label: String, json: Bool) { self.label = label; self.json = json }

    /// Now in UTC as ISO 8601 (`2026-11-29T09:20:30Z`), by the C library: a Foundation date
    /// formatter per record cost time and loaded ICU's data into every daemon.
    static func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let level = event.level, message = event.message
        let all = metadata.merging(event.metadata ?? [:]) { $1 }
        let time = Self.timestamp()
        var text: String
        if json {
            var object: [String: String] = ["time": time, "level": level.rawValue, "logger": label, "message": "\(message)"]
            for (k, v) in all { object[k] = "\(v)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            text = String(decoding: data, as: UTF8.self)
        } else {
            text = "\(time) \(level.rawValue.uppercased()) \(label): \(message)"
            if !all.isEmpty { text += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        }
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }
}

/// Progress output on standard output, one line at a time, unbuffered (readable through a pipe).
public enum Console {
    public static func line(_ text: String) {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }
}
