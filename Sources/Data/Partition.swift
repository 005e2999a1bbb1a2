// Partitioners: which training samples each federated client owns.
//
// All partitioners work within a domain, so every client holds data of exactly one
// domain and is evaluated on that domain's whole test split (the FedBN / FedWon
// setting). A single-domain dataset (e.g. CIFAR-10) is simply one domain.
// Dirichlet label skew follows Hsu, Qi & Brown (2019), "Measuring the effects of
// non-identical data distribution for federated visual classification".

/// How to split each domain's training data among clients, parsed from a short
/// spec: `domain`, `domain:K`, `dirichlet:α`, `iid`.
public enum PartitionSpec: Sendable, Equatable, CustomStringConvertible {
    /// `domain` (K = 1, cross-silo: one client per domain) or `domain:K` (each domain
    /// split IID over K clients, cross-device).
    case domain(clientsPerDomain: Int)
    /// `dirichlet:α`: each domain split over `clientsPerDomain` clients with class
    /// proportions drawn from Dirichlet(α); small α means strong label skew.
    case dirichlet(alpha: Double)
    /// `iid`: each domain split uniformly at random over `clientsPerDomain` clients.
    case iid

    /// Parses `domain`, `domain:K` (K ≥ 1), `dirichlet:α` (α > 0) or `iid`.
    /// - Throws: `DataError.invalidSpec` quoting the bad value and saying what is expected.
    public init(parsing text: String) throws {
        let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
        let parts = trimmed.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let usage = "expected one of domain, domain:K, dirichlet:ALPHA, iid"
        switch parts[0] {
        case "domain":
            if parts.count == 1 { self = .domain(clientsPerDomain: 1); return }
            guard let k = Int(parts[1]), k >= 1 else {
                throw DataError.invalidSpec(value: text, reason: "clients per domain (\(parts[1])) must be a whole number of at least 1")
            }
            self = .domain(clientsPerDomain: k)
        case "dirichlet":
            guard parts.count == 2 else {
                throw DataError.invalidSpec(value: text, reason: "dirichlet needs a concentration, e.g. dirichlet:0.5")
            }
            guard let a = Double(parts[1]), a > 0, a.isFinite else {
                throw DataError.invalidSpec(value: text, reason: "Dirichlet alpha (\(parts[1])) must be a positive number")
            }
            self = .dirichlet(alpha: a)
        case "iid":
            guard parts.count == 1 else { throw DataError.invalidSpec(value: text, reason: "iid takes no parameter; \(usage)") }
            self = .iid
        default:
            throw DataError.invalidSpec(value: text, reason: "unknown partition; \(usage)")
        }
    }

    /// The spec in the textual form `init(parsing:)` reads.
    public var description: String {
        switch self {
        case .domain(1): "domain"
        case let .domain(k): "domain:\(k)"
        case let .dirichlet(a): "dirichlet:\(a)"
        case .iid: "iid"
        }
    }
}

/// The training samples one client owns.
public struct ClientPartition: Sendable, Equatable {
    /// Client name: the domain and the client's number within it, e.g. `"svhn-0"`.
    public var name: String
    /// Index of the client's domain in the list given to `Partitioner.partition`.
    public var domainIndex: Int
    /// Name of the client's domain; its test split is the client's test set.
    public var domain: String
    /// Indices into the domain's training split, ascending.
    public var trainIndices: [Int]

    /// The client's training images, copied out of its domain's training split.
    public func trainingData(_ domains: [DomainData]) -> Dataset {
        domains[domainIndex].train.subset(trainIndices)
    }

    /// The client's test set: its domain's whole test split.
    public func testData(_ domains: [DomainData]) -> Dataset {
        domains[domainIndex].test
    }
}

/// Splits multi-domain training data among clients.
public enum Partitioner {
    /// Assigns training samples to clients.
    ///
    /// A domain's split depends only on the seed, the domain's name and its labels,
    /// not on which other domains are listed: a client daemon that loads only its own
    /// domain gets the same indices as a whole-federation simulation.
    ///
    /// First, if `fraction` < 1, each domain keeps a stratified random
    /// ⌊fraction × n⌋ of its training samples (FedBN uses 10%: 743 of 7,438). Then each
    /// domain's kept samples are split among its clients per `spec`. Every kept
    /// sample goes to exactly one client; clients are ordered domain by domain.
    /// - Parameters:
    ///   - trainLabels: one label array per domain (each domain's training labels).
    ///   - domainNames: the domains' names, used in client names.
    ///   - spec: how to split within a domain.
    ///   - clientsPerDomain: clients per domain for `iid` and `dirichlet` (ignored by `domain`).
    ///   - fraction: share of each domain's training data used, in (0, 1].
    ///   - seed: the same seed gives the same partition.
    /// - Throws: `DataError.invalidSpec` when a domain has fewer kept samples than
    ///   clients, or parameters are out of range.
    public static func partition(trainLabels: [[Int32]], domainNames: [String], spec: PartitionSpec,
                                 clientsPerDomain: Int = 1, fraction: Double = 1,
                                 seed: UInt64) throws -> [ClientPartition] {
        precondition(trainLabels.count == domainNames.count, "Partitioner: one name per domain")
        guard fraction > 0, fraction <= 1 else {
            throw DataError.invalidSpec(value: "\(fraction)", reason: "data fraction must be in (0, 1]")
        }
        let k: Int
        switch spec {
        case let .domain(n): k = n
        case .iid, .dirichlet: k = clientsPerDomain
        }
        guard k >= 1 else {
            throw DataError.invalidSpec(value: "\(k)", reason: "clients per domain must be at least 1")
        }
        var clients: [ClientPartition] = []
        for (d, labels) in trainLabels.enumerated() {
            // Seeded by the domain's name, not its position: a client that loads only
            // its own domain computes the same partition as a full simulation.
            var rng = SeededGenerator(seed: mixSeed(seed, stableHash(domainNames[d]), 0xFA27))
            let kept = fraction < 1 ? stratifiedSample(labels, fraction: fraction, rng: &rng) : Array(labels.indices)
            guard kept.count >= k else {
                throw DataError.invalidSpec(value: spec.description,
                    reason: "domain \"\(domainNames[d])\" has \(kept.count) training samples for \(k) clients")
            }
            let shards: [[Int]]
            switch spec {
            case .domain, .iid: shards = splitEvenly(kept, parts: k, rng: &rng)
            case let .dirichlet(alpha): shards = dirichletSplit(kept, labels: labels, parts: k, alpha: alpha, rng: &rng)
            }
            for (c, shard) in shards.enumerated() {
                clients.append(ClientPartition(name: "\(domainNames[d])-\(c)", domainIndex: d,
                                               domain: domainNames[d], trainIndices: shard.sorted()))
            }
        }
        return clients
    }

    /// `partition(trainLabels:...)` for datasets held in memory.
    public static func partition(_ domains: [DomainData], spec: PartitionSpec, clientsPerDomain: Int = 1,
                                 fraction: Double = 1, seed: UInt64) throws -> [ClientPartition] {
        try partition(trainLabels: domains.map(\.train.labels), domainNames: domains.map(\.name), spec: spec,
                      clientsPerDomain: clientsPerDomain, fraction: fraction, seed: seed)
    }

    /// A human-readable table: per client its domain, number of examples and class
    /// histogram, and the size of the test split it is evaluated on.
    public static func summary(_ clients: [ClientPartition], domains: [DomainData]) -> String {
        let classes = domains.map(\.train.classCount).max() ?? 0
        let nameWidth = max(6, clients.map(\.name.count).max() ?? 0)
        func pad(_ s: String, _ w: Int) -> String { s.count >= w ? s : s + String(repeating: " ", count: w - s.count) }
        func lpad(_ s: String, _ w: Int) -> String { s.count >= w ? s : String(repeating: " ", count: w - s.count) + s }
        var lines = [pad("client", nameWidth) + "  " + pad("domain", 8) + lpad("train", 7) + lpad("test", 7) + "  class histogram (0..\(classes - 1))"]
        for c in clients {
            let d = domains[c.domainIndex]
            let h = d.train.classHistogram(c.trainIndices)
            lines.append(pad(c.name, nameWidth) + "  " + pad(c.domain, 8) + lpad("\(c.trainIndices.count)", 7)
                         + lpad("\(d.test.count)", 7) + "  " + h.map { lpad("\($0)", 4) }.joined())
        }
        let total = clients.reduce(0) { $0 + $1.trainIndices.count }
        lines.append("\(clients.count) clients, \(total) training examples")
        return lines.joined(separator: "\n")
    }

    // MARK: algorithms

    /// ⌊fraction × n⌋ (at least 1) indices, each class contributing in proportion, shuffled.
    static func stratifiedSample(_ labels: [Int32], fraction: Double, rng: inout SeededGenerator) -> [Int] {
        let target = max(1, Int((fraction * Double(labels.count) + 1e-9).rounded(.down)))
        var byClass: [Int32: [Int]] = [:]
        for (i, l) in labels.enumerated() { byClass[l, default: []].append(i) }
        let classes = byClass.keys.sorted()
        // Largest-remainder apportionment of the target over classes.
        let exact = classes.map { Double(byClass[$0]!.count) * Double(target) / Double(labels.count) }
        var take = exact.map { Int($0) }
        var order = Array(classes.indices)
        order.sort { (exact[$0] - Double(take[$0]), $1) > (exact[$1] - Double(take[$1]), $0) }
        var short = target - take.reduce(0, +)
        for j in order where short > 0 { take[j] += 1; short -= 1 }
        var out: [Int] = []
        for (j, c) in classes.enumerated() {
            var members = byClass[c]!
            rng.shuffle(&members)
            out += members.prefix(take[j])
        }
        rng.shuffle(&out)
        return out
    }

    /// Shuffles `ids` and cuts them into `parts` shards whose sizes differ by at most one.
    static func splitEvenly(_ ids: [Int], parts: Int, rng: inout SeededGenerator) -> [[Int]] {
        var shuffled = ids
        rng.shuffle(&shuffled)
        var out: [[Int]] = []
        var start = 0
        for p in 0..<parts {
            let size = ids.count / parts + (p < ids.count % parts ? 1 : 0)
            out.append(Array(shuffled[start..<(start + size)]))
            start += size
        }
        return out
    }

    /// Label skew: for each class, proportions over clients from Dirichlet(α); the
    /// class's samples are cut accordingly. Draws again (up to 100 times) while some
    /// client is empty, then moves single samples from the largest clients to the
    /// empty ones, so every client is non-empty.
    static func dirichletSplit(_ ids: [Int], labels: [Int32], parts: Int, alpha: Double,
                               rng: inout SeededGenerator) -> [[Int]] {
        var byClass: [Int32: [Int]] = [:]
        for i in ids { byClass[labels[i], default: []].append(i) }
        let classes = byClass.keys.sorted()
        var shards: [[Int]] = []
        for _ in 0..<100 {
            shards = [[Int]](repeating: [], count: parts)
            for c in classes {
                var members = byClass[c]!
                rng.shuffle(&members)
                let p = rng.nextDirichlet(alpha: alpha, count: parts)
                var cumulative = 0.0, start = 0
                for j in 0..<parts {
                    cumulative += p[j]
                    let end = j == parts - 1 ? members.count : min(members.count, Int((cumulative * Double(members.count)).rounded()))
                    if end > start { shards[j] += members[start..<end] }
                    start = max(start, end)
                }
            }
            if shards.allSatisfy({ !$0.isEmpty }) { return shards }
        }
        for j in 0..<parts where shards[j].isEmpty {
            let donor = shards.indices.max { shards[$0].count < shards[$1].count }!
            shards[j].append(shards[donor].removeLast())
        }
        return shards
    }
}

import Foundation
import Tensor
