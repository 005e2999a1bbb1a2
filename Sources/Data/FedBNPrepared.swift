// FedBN's prepared Office-Caltech-10 and DomainNet splits, read as they are:
//
//   ROOT/office_caltech_10/{amazon,caltech,dslr,webcam}_{train,test}.pkl
//   ROOT/DomainNet/{clipart,infograph,painting,quickdraw,real,sketch}_{train,test}.pkl
//
// Each `.pkl` is a pickled pair of NumPy string arrays: image paths relative to
// ROOT and text labels, turned into label numbers by FedBN's own label orders.
// A path that leaves ROOT is refused before anything is opened.

import Foundation

/// Reads FedBN's prepared image-list splits.
enum FedBNPrepared {
    /// One of FedBN's image collections.
    struct Collection: Sendable, Equatable {
        /// The folder under ROOT that holds the `.pkl` files.
        let folder: String
        /// The domains, in FedBN's order.
        let domains: [String]
        /// FedBN's label order: label k is `labels[k]`.
        let labels: [String]
    }

    static let officeCaltech10 = Collection(
        folder: "office_caltech_10", domains: ["amazon", "caltech", "dslr", "webcam"],
        labels: ["back_pack", "bike", "calculator", "headphones", "keyboard", "laptop_computer",
                 "monitor", "mouse", "mug", "projector"])
    static let domainNet = Collection(
        folder: "DomainNet", domains: ["clipart", "infograph", "painting", "quickdraw", "real", "sketch"],
        labels: ["bird", "feather", "headphones", "ice_cream", "teapot", "tiger", "whale", "windmill",
                 "wine_glass", "zebra"])
    static let all = [officeCaltech10, domainNet]

    /// Where the prepared files are: ROOT (`root` itself, or its parent when `root`
    /// is the collection folder) and the collections found there; nil when none is.
    static func find(at root: String) -> (base: String, collections: [Collection])? {
        func present(_ base: String) -> [Collection] {
            all.filter { c in c.domains.contains { readable(pklPath(base, c, $0, "train")) } }
        }
        let here = present(root)
        if !here.isEmpty { return (root, here) }
        let trimmed = root.hasSuffix("/") ? String(root.dropLast()) : root
        let last = trimmed.split(separator: "/").last.map(String.init) ?? trimmed
        if let c = all.first(where: { $0.folder == last }) {
            let parent = trimmed.contains("/") ? String(trimmed[..<trimmed.lastIndex(of: "/")!]) : "."
            if present(parent.isEmpty ? "/" : parent).contains(c) { return (parent.isEmpty ? "/" : parent, [c]) }
        }
        return nil
    }

    /// The domains to load: `domains` (each must be one of the collections'), or every
    /// domain of the one collection found that has its train list, in FedBN's order.
    static func domains(_ domains: [String]?, base: String, collections: [Collection]) throws -> [(String, Collection)] {
        if let domains {
            return try domains.map { name in
                guard let c = collections.first(where: { $0.domains.contains(name) }) else {
                    throw DataError.invalidSpec(value: name, reason: "no such domain among FedBN's prepared files in \(base); expected one of "
                        + collections.flatMap(\.domains).joined(separator: ", "))
                }
                return (name, c)
            }
        }
        guard collections.count == 1, let c = collections.first else {
            throw DataError.invalidSpec(value: base, reason: "holds both " + collections.map(\.folder).joined(separator: " and ")
                + "; name the domains to load (e.g. --domains " + collections[0].domains.joined(separator: ",") + ")")
        }
        return c.domains.filter { readable(pklPath(base, c, $0, "train")) }.map { ($0, c) }
    }

    /// Loads one domain's train and test splits.
    static func load(base: String, collection: Collection, domain: String, shape: ImageShape) throws -> DomainData {
        func split(_ name: String) throws -> Dataset {
            let pkl = pklPath(base, collection, domain, name)
            guard readable(pkl) else { throw DataError.io(file: pkl, reason: "no such file (FedBN's \(name) split of \(domain))") }
            let (paths, texts) = try Pickle.loadTextPairs(pkl)
            guard !paths.isEmpty else { throw DataError.malformed(file: pkl, reason: "lists no images") }
            var files: [(path: String, label: Int32)] = []
            files.reserveCapacity(paths.count)
            for (k, (path, text)) in zip(paths, texts).enumerated() {
                guard let label = collection.labels.firstIndex(of: text) else {
                    throw DataError.malformed(file: pkl, reason: "entry \(k) has the label \"\(text)\", which is not in FedBN's \(collection.folder) label order ("
                        + collection.labels.joined(separator: ", ") + ")")
                }
                files.append((try resolve(path, base: base, file: pkl, entry: k), Int32(label)))
            }
            return try ImageFolder.decode(files, domain: domain, classCount: collection.labels.count, shape: shape)
        }
        return DomainData(name: domain, train: try split("train"), test: try split("test"), classNames: collection.labels)
    }

    /// `path` joined to `base`; refused when it is absolute or its `..` steps leave `base`.
    static func resolve(_ path: String, base: String, file: String, entry: Int) throws -> String {
        func refuse(_ why: String) -> DataError {
            .malformed(file: file, reason: "entry \(entry) names the image \"\(path)\", which \(why); paths must stay inside \(base)")
        }
        guard !path.isEmpty else { throw refuse("is empty") }
        guard !path.hasPrefix("/"), !path.hasPrefix("~") else { throw refuse("is absolute") }
        guard !path.contains("\u{0}"), !path.contains("\\") else { throw refuse("holds a NUL or a backslash") }
        var depth = 0
        for part in path.split(separator: "/") {
            if part == ".." { depth -= 1 } else if part != "." { depth += 1 }
            if depth < 0 { throw refuse("leaves the dataset root") }
        }
        return DatasetFolder.join(base, path)
    }

    static func pklPath(_ base: String, _ c: Collection, _ domain: String, _ split: String) -> String {
        DatasetFolder.join(DatasetFolder.join(base, c.folder), "\(domain)_\(split).pkl")
    }

    static func readable(_ path: String) -> Bool {
        var dir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &dir) && !dir.boolValue
    }
}
