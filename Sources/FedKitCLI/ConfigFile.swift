import Foundation

/// Settings read from a TOML file (`--config federation.toml`).
///
/// FedKit reads the subset it needs: `key = value` lines with strings in double quotes,
/// numbers, booleans and arrays of numbers; `#` comments; `[section]` headers, which
/// only group keys (a key means the same in any section). Keys are the long flag names
/// with `-` or `_` (`min-fit-clients`, `min_fit_clients`). Flags given on the command
/// line override the file.
public struct ConfigFile: Sendable {
    public private(set) var values: [String: String] = [:]
    public let path: String?

    public init() { path = nil }

    /// Parses the file at `path`.
    /// - Throws: a `ConfigError` naming the file, the line and what is wrong.
    public init(path: String) throws {
        self.path = path
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError("cannot read configuration file \(path)")
        }
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = line.firstIndex(of: "#"), !line[..<hash].contains("\"") { line = line[..<hash] }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || (trimmed.hasPrefix("[") && trimmed.hasSuffix("]")) { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw ConfigError("\(path):\(number + 1): expected `key = value`, got `\(trimmed)`")
            }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "-")
            var value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.hasPrefix("\"") {
                guard value.count >= 2, value.hasSuffix("\"") else { throw ConfigError("\(path):\(number + 1): unterminated string for \(key)") }
                value = String(value.dropFirst().dropLast())
            } else if value.hasPrefix("[") {
                guard value.hasSuffix("]") else { throw ConfigError("\(path):\(number + 1): unterminated array for \(key)") }
                value = value.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ",")
            }
            guard !key.isEmpty else { throw ConfigError("\(path):\(number + 1): empty key") }
            values[key] = value
        }
    }

    /// `flag` when given on the command line, else the file's value for `key`, else `fallback`.
    /// - Throws: `ConfigError` when the file's value does not parse as `T`.
    public func resolve<T: LosslessStringConvertible>(_ flag: T?, _ key: String, _ fallback: T) throws -> T {
        if let flag { return flag }
        guard let text = values[key] else { return fallback }
        guard let v = T(text) else { throw ConfigError("\(path ?? "config"): \(key) = \(text) is not a valid \(T.self)") }
        return v
    }

    /// Like `resolve` for values that are optional even after the file.
    public func resolve<T: LosslessStringConvertible>(_ flag: T?, _ key: String) throws -> T? {
        if let flag { return flag }
        guard let text = values[key] else { return nil }
        guard let v = T(text) else { throw ConfigError("\(path ?? "config"): \(key) = \(text) is not a valid \(T.self)") }
        return v
    }
}

/// A configuration problem, phrased for the user.
public struct ConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
