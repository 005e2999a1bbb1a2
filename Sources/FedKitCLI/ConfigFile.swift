import ArgumentParser
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
    /// The line each key was set on (1-based).
    public private(set) var lines: [String: Int] = [:]

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
            lines[key] = number + 1
        }
    }

    /// The daemons' configuration: the file at `path` (its keys checked against
    /// `federationKeys`), or an empty one.
    public static func load(_ path: String?) throws -> ConfigFile {
        guard let path else { return ConfigFile() }
        let file = try ConfigFile(path: path)
        try file.requireKnownKeys()
        return file
    }

    /// The keys a federation's configuration file may hold: fed-server's and fed-client's
    /// options, since one file may configure both (each daemon takes the keys it knows).
    public static var federationKeys: Set<String> {
        ServerCommand.configurationKeys.union(ClientCommand.configurationKeys)
    }

    /// Refuses keys that are none of `known` (by default `federationKeys`): a misspelt key
    /// would otherwise be ignored and its setting silently left at the default.
    /// - Throws: `ConfigError` naming the file, the line, the key and the nearest known key.
    public func requireKnownKeys(_ known: Set<String> = ConfigFile.federationKeys) throws {
        let unknown = values.keys.filter { !known.contains($0) }.sorted { lines[$0, default: 0] < lines[$1, default: 0] }
        guard let key = unknown.first else { return }
        let nearest = known.min { Self.distance(key, $0) < Self.distance(key, $1) }
        let hint = nearest.flatMap { Self.distance(key, $0) <= max(2, key.count / 3) ? " (did you mean `\($0)`?)" : nil } ?? ""
        let more = unknown.count > 1 ? "; also unknown: \(unknown.dropFirst().joined(separator: ", "))" : ""
        throw ConfigError("\(path ?? "config"):\(lines[key, default: 0]): unknown key `\(key)`\(hint)\(more); keys are the long option names of fed-server --help and fed-client --help")
    }

    /// Edit distance (insertions, deletions, substitutions) between two keys.
    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        guard !a.isEmpty, !b.isEmpty else { return max(a.count, b.count) }
        var row = Array(0...b.count)
        for i in 1...a.count {
            var diagonal = row[0]
            row[0] = i
            for j in 1...b.count {
                let above = row[j]
                row[j] = min(above + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
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

extension ParsableCommand {
    /// The keys a configuration file may set: the command's long option names
    /// (`min-fit-clients`), hidden ones included, but `help`, `config` and `check`, which
    /// only make sense on the command line.
    public static var configurationKeys: Set<String> {
        longOptionNames.subtracting(["help", "config", "check"])
    }

    /// The command's long option names, hidden ones included.
    public static var longOptionNames: Set<String> {
        var names: Set<String> = []
        for line in helpMessage(includeHidden: true, columns: 10_000).split(separator: "\n") {
            // Option lines start with two spaces and a dash; their names end at the first gap.
            guard line.hasPrefix("  -") else { continue }
            let signature = line.dropFirst(2).components(separatedBy: "  ").first ?? ""
            for token in signature.split(whereSeparator: { " ,/".contains($0) }) where token.hasPrefix("--") {
                names.insert(String(token.dropFirst(2)))
            }
        }
        return names
    }
}

/// A configuration problem, phrased for the user.
public struct ConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}
