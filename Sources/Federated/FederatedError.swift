/// Everything that can go wrong in the federated layer, with the offending values.
public enum FederatedError: Error, Equatable, CustomStringConvertible {
    /// A client's update did not match the model.
    case badUpdate(client: String, round: UInt64, reason: String)
    /// A file could not be written; the previous version is intact.
    case writeFailed(path: String, reason: String)
    /// A state directory could not be created.
    case directoryUnusable(path: String, reason: String)
    /// A checkpoint or state file is unreadable or corrupt.
    case corruptFile(path: String, reason: String)
    /// A configuration that cannot run, with the values that conflict.
    case invalidConfiguration(String)
    /// Fewer clients connected in time than the round needs.
    case quorumNotMet(round: UInt64, answered: Int, required: Int)
    /// Every one of `attempts` attempts of a round had fewer updates than required
    /// (`answered` in the last one).
    case roundAttemptsExhausted(round: UInt64, attempts: Int, answered: Int, required: Int)
    /// The global model kept in the page cache during round `round` could not be read back.
    case modelLost(round: UInt64, reason: String)

    public var description: String {
        switch self {
        case let .badUpdate(client, round, reason):
            return "client \"\(client)\" sent an unusable update for round \(round): \(reason)"
        case let .writeFailed(path, reason):
            return "could not write \(path): \(reason); the previous file is kept"
        case let .directoryUnusable(path, reason):
            return "cannot create the directory \(path): \(reason)"
        case let .corruptFile(path, reason):
            return "\(path) is not a valid FedKit file: \(reason)"
        case let .invalidConfiguration(message):
            return message
        case let .quorumNotMet(round, answered, required):
            return "round \(round): \(answered) client(s) answered, \(required) required"
        case let .roundAttemptsExhausted(round, attempts, answered, required):
            return "round \(round) missed its quorum in all \(attempts) attempts: \(answered) update(s) in the last, \(required) required (raise --round-timeout or lower --min-fit-clients)"
        case let .modelLost(round, reason):
            return "round \(round): the global model could not be read back from the page cache (\(reason)); start the server again to resume from the last checkpoint"
        }
    }
}
