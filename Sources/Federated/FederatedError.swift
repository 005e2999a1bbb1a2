/// Everything that can go wrong in the federated layer, with the offending values.
public enum FederatedError: Error, Equatable, CustomStringConvertible {
    /// A client's update did not match the model.
    case badUpdate(client: String, round: UInt64, reason: String)
    /// A file could not be written; the previous version is intact.
    case writeFailed(path: String, reason: String)
    /// A checkpoint or state file is unreadable or corrupt.
    case corruptFile(path: String, reason: String)
    /// A configuration that cannot run, with the values that conflict.
    case invalidConfiguration(String)
    /// Fewer clients answered than the round needs.
    case quorumNotMet(round: UInt64, answered: Int, required: Int)

    public var description: String {
        switch self {
        case let .badUpdate(client, round, reason):
            return "client \"\(client)\" sent an unusable update for round \(round): \(reason)"
        case let .writeFailed(path, reason):
            return "could not write \(path): \(reason); the previous file is kept"
        case let .corruptFile(path, reason):
            return "\(path) is not a valid FedKit file: \(reason)"
        case let .invalidConfiguration(message):
            return message
        case let .quorumNotMet(round, answered, required):
            return "round \(round): \(answered) client(s) answered, \(required) required"
        }
    }
}
