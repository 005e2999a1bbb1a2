// swift-tools-version:6.0
import PackageDescription

/// Numeric modules are compiled with optimization even in debug builds: the tests
/// run real forward/backward passes and would otherwise take minutes.
let optimized: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "FedKit",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "fed-server", targets: ["fed-server"]),
        .executable(name: "fed-client", targets: ["fed-client"]),
        .executable(name: "fed-sim", targets: ["fed-sim"]),
        .executable(name: "fed-bench", targets: ["fed-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [
        // Layer 0: OpenBLAS; libjpeg-turbo and zlib for image and archive decoding.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),
        .systemLibrary(name: "CTurboJPEG", path: "Sources/CTurboJPEG"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // Layer 1: tensors and numeric kernels.
        .target(name: "Tensor", dependencies: ["CBLAS"], swiftSettings: optimized),
        // Layer 2: layers, losses, optimizers, state dictionaries, model zoo.
        .target(name: "NN", dependencies: ["Tensor"], swiftSettings: optimized),
        // Layer 3: datasets, image files, the digits5 generator, partitioners.
        .target(name: "Data", dependencies: ["Tensor", "CTurboJPEG", "CZlib"], swiftSettings: optimized),
        // Layer 4: protobuf contract, framing, chunked tensors.
        .target(name: "CCRC32C"),
        .target(name: "Wire", dependencies: [
            "CCRC32C",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Layer 5: mutual-TLS listener and dialer; the plain-HTTP status listener.
        .target(name: "Transport", dependencies: [
            "Wire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Layer 6: strategies, aggregation, the round engine, the client runtime.
        .target(name: "Federated", dependencies: [
            "NN", "Data", "Wire", "Transport", "CBLAS",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: optimized),
        // Command-line plumbing shared by the executables: option groups, config files, logging.
        .target(name: "FedKitCLI", dependencies: [
            "Federated", "Data", "NN", "Tensor", "Transport", "Wire",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
        ]),
        // Thin executables.
        .executableTarget(name: "fed-server", dependencies: ["FedKitCLI"]),
        .executableTarget(name: "fed-client", dependencies: ["FedKitCLI"]),
        .executableTarget(name: "fed-sim", dependencies: [
            "FedKitCLI", "Federated", "Data", "NN",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "fed-bench", dependencies: [
            "FedKitCLI", "Federated", "CBLAS", "NN", "Data", "Wire", "Transport",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: optimized),

        .testTarget(name: "TensorTests", dependencies: ["Tensor"], swiftSettings: optimized),
        .testTarget(name: "NNTests", dependencies: ["NN"], exclude: ["Fixtures"], swiftSettings: optimized),
        .testTarget(name: "DataTests", dependencies: ["Data", "NN", "Tensor"], exclude: ["Fixtures"], swiftSettings: optimized),
        .target(name: "FuzzCorpusStore", path: "Tests/FuzzCorpusStore"),
        .testTarget(name: "WireTests", dependencies: [
            "Wire", "Tensor", "CCRC32C", "FuzzCorpusStore", .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "TransportTests", dependencies: [
            "Transport", "Wire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], exclude: ["Interop"]),
        .testTarget(name: "FederatedTests", dependencies: ["Federated", "Transport", "Wire", "NN", "Data"]),
        // Runs the built fed-sim, fed-server and fed-client executables end to end.
        .testTarget(name: "SimulationTests"),
        // Runs cluster/netns/launch.sh (real daemons in network namespaces) and checks cluster/'s files; no module dependencies.
        .testTarget(name: "ClusterTests"),
        // End-to-end fault suite: real daemons killed, stopped and restarted; hostile peers; full disks.
        // Needs the fed-server and fed-client products built (`swift build --build-tests` builds them).
        .testTarget(name: "FaultTests", dependencies: [
            "Federated", "FedKitCLI", "Transport", "Wire", "NN", "Data", "Tensor", "FuzzCorpusStore",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ]
)
