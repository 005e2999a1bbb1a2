import ArgumentParser
import Data
import Foundation

extension FedSim {
    /// `fed-sim export-data`: any dataset FedKit reads, written as an image folder of JPEGs.
    struct ExportData: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "export-data",
            abstract: "Write a dataset (the built-in digits5 or any --data folder) as an image folder of JPEGs, OUT/DOMAIN/{train,test}/CLASS/*.jpg.",
            discussion: "The result is read back by --data OUT like any image folder, so the JPEG path (decoding, resizing, AlexNet) runs without a download. OUT must not exist; it appears only when complete.")
        @Argument(help: "The folder to create.") var out: String
        @Option(help: "Output format (jpeg).") var format: String = "jpeg"
        @Option(help: "digits5 (built-in), digits5:TRAIN:TEST, or a dataset folder.") var data: String = "digits5"
        @Option(help: "Comma-separated domains (default: every domain).") var domains: String?
        @Option(help: "Height and width of the written images (default 28, the digit models' input).") var size: Int?
        @Option(help: "JPEG quality, 1–100.") var quality: Int = 95
        @Option(help: "Seed of digits5's images and of a class-layout folder's split.") var seed: UInt64 = 1

        func validate() throws {
            guard format == "jpeg" else { throw ValidationError("--format (\(format)) must be jpeg") }
            if let s = size, s < 1 { throw ValidationError("--size (\(s)) must be at least 1") }
            guard (1...100).contains(quality) else { throw ValidationError("--quality (\(quality)) must be in 1...100") }
        }

        func run() throws {
            let names = domains.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            do {
                let source = try DataSource(parsing: data)
                let shape = size.map { ImageShape(channels: 3, height: $0, width: $0) } ?? .digits
                let loaded = try source.load(domains: names, seed: seed, shape: shape)
                let files = try DatasetFolder.writeImageFolder(loaded, root: out, quality: quality)
                print("wrote \(out): \(files) JPEG files, \(loaded.count) domains (\(loaded.map(\.name).joined(separator: ", "))) at \(shape)")
            } catch let e as DataError {
                throw ValidationError("\(e)")
            }
        }
    }
}
