// Writing any dataset FedKit reads as an image folder of JPEGs,
// ROOT/DOMAIN/{train,test}/CLASS/NNNNNN.jpg, the layout `ImageFolder` reads back.

import Foundation

extension DatasetFolder {
    /// Writes `domains` as an image folder of JPEG files at `root`, which must not exist yet.
    ///
    /// Class folders are the domains' class names, or the label numbers zero-padded so
    /// that their sorted order is the label order (`0` … `9`; `00` … `99`). Everything is
    /// written into a sibling temporary folder first and renamed to `root` when complete,
    /// so an interrupted export leaves no half-written dataset behind.
    /// - Parameters:
    ///   - domains: the domains to write (every image at its stored size).
    ///   - root: the folder to create.
    ///   - quality: JPEG quality, 1–100.
    /// - Returns: the number of files written.
    /// - Throws: `DataError` naming the folder or file that cannot be written.
    @discardableResult
    public static func writeImageFolder(_ domains: [DomainData], root: String, quality: Int = 95) throws -> Int {
        guard (1...100).contains(quality) else {
            throw DataError.invalidSpec(value: String(quality), reason: "JPEG quality must be in 1...100")
        }
        let fm = FileManager.default
        guard !fm.fileExists(atPath: root) else { throw DataError.io(file: root, reason: "already exists; choose a new folder") }
        let trimmed = root.hasSuffix("/") ? String(root.dropLast()) : root
        let temporary = trimmed + ".partial-\(ProcessInfo.processInfo.processIdentifier)"
        try? fm.removeItem(atPath: temporary)
        func makeFolder(_ path: String) throws {
            do { try fm.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw DataError.io(file: path, reason: "cannot create folder: \(error.localizedDescription)")
            }
        }
        var written = 0
        do {
            for d in domains {
                let classes = max(d.train.classCount, d.test.classCount)
                let digits = String(max(0, classes - 1)).count
                let names = d.classNames.count == classes ? d.classNames
                    : (0..<classes).map { k in String(repeating: "0", count: digits - String(k).count) + String(k) }
                for (split, data) in [("train", d.train), ("test", d.test)] {
                    let splitFolder = join(join(temporary, d.name), split)
                    for name in names { try makeFolder(join(splitFolder, name)) }
                    for i in 0..<data.count {
                        let path = join(join(splitFolder, names[Int(data.labels[i])]), String(format: "%06d.jpg", i))
                        let bytes = try JPEG.encode(interleaved(data, i), quality: quality, name: path)
                        try writeFile(bytes, to: path)
                        written += 1
                    }
                }
            }
            try FileBytes.syncTree(temporary)
            guard rename(temporary, trimmed) == 0 else {
                throw DataError.io(file: root, reason: "cannot rename \(temporary) to it: \(String(cString: strerror(errno)))")
            }
        } catch {
            try? fm.removeItem(atPath: temporary)
            throw error
        }
        return written
    }

    /// Image `i` of `data` as an interleaved `DecodedImage` (1 or 3 channels).
    static func interleaved(_ data: Dataset, _ i: Int) -> DecodedImage {
        let plane = data.height * data.width, c = data.channels == 1 ? 1 : 3
        let image = data.image(i)
        var pixels = [UInt8](repeating: 0, count: plane * c)
        let base = image.startIndex
        for k in 0..<plane {
            for ch in 0..<c { pixels[k * c + ch] = image[base + ch * plane + k] }
        }
        return DecodedImage(width: data.width, height: data.height, channels: c, pixels: pixels)
    }
}

/// Flushing a written folder tree to disk before it is renamed into place.
enum FileBytes {
    /// fsyncs every file and folder under `root`, then `root` itself.
    static func syncTree(_ root: String) throws {
        let fm = FileManager.default
        let items = (fm.enumerator(atPath: root)?.allObjects as? [String]) ?? []
        for item in items + [""] {
            let path = item.isEmpty ? root : DatasetFolder.join(root, item)
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw DataError.io(file: path, reason: "cannot open to sync: \(String(cString: strerror(errno)))") }
            defer { close(fd) }
            guard fsync(fd) == 0 else { throw DataError.io(file: path, reason: "cannot sync: \(String(cString: strerror(errno)))") }
        }
    }
}
