import ArgumentParser
import FedKitCLI
import Foundation
import Logging
import Transport
import Wire
#if canImport(Glibc)
import Glibc
#endif

/// `fed-bench server-memory`: the coordinator's resident memory while N connected clients each
/// receive a digit-model-sized payload (14.2 M float32, 56.9 MB) and send one back.
///
/// The server side runs in this process: a real `FederationServer` (TLS 1.3, chunked payloads)
/// driven like the coordinator drives a round — at most `--max-concurrent-sends` model sends at
/// once, at most `--max-in-flight` requests unanswered, one reader loop per connection that
/// validates every update it receives. The clients run in one child process (this executable
/// again), so that the figures are the server's alone; each client echoes the payload it was
/// sent. The server keeps one copy of the payload; it has no model, gradients or accumulator.
///
/// Reported: resident memory (VmRSS) once every client is connected, the peak (the kernel's
/// VmHWM), what stays resident after the rounds, and the same after `malloc_trim(0)` (what
/// the allocator merely keeps cached rather than what is still referenced), each in MB and as
/// a multiple of the payload size.
struct ServerMemoryBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "server-memory",
        abstract: "Server peak resident memory with N connected clients exchanging digit-model-sized payloads.")

    @Option(help: "Connected clients; each receives the payload and sends one back every round.")
    var clients = 50

    @Option(help: "Rounds (every client answers once per round).")
    var rounds = 1

    @Option(help: "Model sends in progress at once (the coordinator's maxConcurrentSends).")
    var maxConcurrentSends = 4

    @Option(help: "Requests sent and not yet answered at once (the coordinator's --max-in-flight).")
    var maxInFlight = 4

    @Option(help: "Updates reassembled at once by the server (fed-server's --max-concurrent-receives); 0: no bound.")
    var maxConcurrentReceives = 0

    @Option(help: "Bytes per chunk of a chunked payload, both directions.")
    var chunkSize = PayloadChunker.defaultChunkSize

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(help: .hidden) var clientsOfPort: Int?
    @Option(help: .hidden) var certificates: String?

    func validate() throws {
        guard clients >= 1 else { throw ValidationError("--clients (\(clients)) must be at least 1") }
        guard rounds >= 1 else { throw ValidationError("--rounds (\(rounds)) must be at least 1") }
        guard maxConcurrentSends >= 1 else { throw ValidationError("--max-concurrent-sends (\(maxConcurrentSends)) must be at least 1") }
        guard maxInFlight >= 1 else { throw ValidationError("--max-in-flight (\(maxInFlight)) must be at least 1") }
        guard maxConcurrentReceives >= 0 else { throw ValidationError("--max-concurrent-receives (\(maxConcurrentReceives)) must be 0 (no bound) or more") }
        guard chunkSize >= 1 else { throw ValidationError("--chunk-size (\(chunkSize)) must be at least 1") }
    }

    static func clientName(_ i: Int) -> String { "bench-\(i)" }

    func run() async throws {
        if let port = clientsOfPort, let directory = certificates {
            try await runClients(port: port, certificates: directory)
        } else {
            try await runServer()
        }
    }

    // MARK: Server (this process)

    private func runServer() async throws {
        ProcessMemory.returnLargeBuffersToTheSystem()  // as fed-server does
        let directory = NSTemporaryDirectory() + "fed-bench-server-memory-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let names = (0..<clients).map(Self.clientName)
        try EphemeralCertificates.write(to: directory, clients: names)
        let quiet = Logger(label: "fed-bench") { _ in SwiftLogNoOpLogHandler() }
        var configuration = ServerConfiguration.mutualTLS(
            credentials: try Credentials.load(certificateFile: "\(directory)/server.crt", keyFile: "\(directory)/server.key",
                                              caFile: "\(directory)/ca.crt"),
            allowedClients: Set(names))
        configuration.logger = quiet
        configuration.chunkSize = chunkSize
        if maxConcurrentReceives > 0 { configuration.maximumConcurrentReceives = maxConcurrentReceives }
        let server = try await FederationServer.start(host: "127.0.0.1", port: 0, configuration: configuration)

        let tensors = WireBench.digitModel()
        let modelBytes = tensors.reduce(0) { $0 + $1.bytes.count }
        let modelMB = Double(modelBytes) / 1e6

        let child = Process()
        child.executableURL = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                                  ?? CommandLine.arguments[0])
        child.arguments = ["server-memory", "--clients", String(clients), "--chunk-size", String(chunkSize), "--clients-of-port", String(server.port),
                           "--certificates", directory]
        let childOutput = Pipe()
        child.standardOutput = childOutput
        // Clients that fail end the benchmark instead of leaving it waiting for them.
        child.terminationHandler = { _ in Task { await server.close() } }
        try child.run()

        var connections: [PeerConnection] = []
        var sessions = server.connections.makeAsyncIterator()
        while connections.count < clients, let connection = await sessions.next() { connections.append(connection) }
        guard connections.count == clients else { throw ValidationError("only \(connections.count) of \(clients) clients connected") }

        let replies = Replies()
        let readers = connections.map { connection in
            Task {
                // The coordinator's reader loop: validate every update as it arrives.
                do {
                    for try await envelope in connection.inbound {
                        guard case .fitResult(let result) = envelope.body else { continue }
                        let received = try result.parameters.wireTensors()
                        let bytes = received.reduce(0) { $0 + $1.bytes.count }
                        await replies.arrived(connection.peerName, ok: received.count == tensors.count && bytes == modelBytes)
                    }
                } catch {}
                await replies.arrived(connection.peerName, ok: false)
            }
        }
        let connectedMB = ProcessMemory.currentRSS()

        let start = Date()
        let inFlight = Slots(maxInFlight), sends = Slots(maxConcurrentSends)
        for round in 1...rounds {
            let request = Envelope(.fitRequest(.with { $0.round = UInt64(round); $0.parameters = Fedkit_V1_Payload(tensors) }))
            await withTaskGroup(of: Void.self) { group in
                for connection in connections {
                    await inFlight.acquire()
                    group.addTask {
                        await sends.acquire()
                        let sent = (try? await connection.send(request)) != nil
                        await sends.release()
                        if sent { await replies.wait(for: connection.peerName) }
                        await inFlight.release()
                    }
                }
            }
        }
        let seconds = Date().timeIntervalSince(start)
        let afterMB = ProcessMemory.currentRSS()
        Self.trimMalloc()
        let trimmedMB = ProcessMemory.currentRSS()
        let peakMB = ProcessMemory.peakRSS()
        let failures = await replies.failures

        for connection in connections { await connection.goodbye(reason: "benchmark finished") }
        for reader in readers { await reader.value }
        await server.close()
        child.waitUntilExit()
        let childLine = String(decoding: childOutput.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let clientsPeakMB = Double(childLine.split(separator: " ").last.map { String($0).trimmingCharacters(in: .whitespacesAndNewlines) } ?? "") ?? 0
        guard failures == 0 else { throw ValidationError("\(failures) client update(s) missing or invalid") }

        if json {
            func f(_ x: Double) -> String { String(format: "%.1f", x) }
            print(#"{"bench":"server_memory","clients":\#(clients),"rounds":\#(rounds),"max_concurrent_sends":\#(maxConcurrentSends),"max_in_flight":\#(maxInFlight),"max_concurrent_receives":\#(maxConcurrentReceives),"model_mb":\#(f(modelMB)),"connected_rss_mb":\#(f(connectedMB)),"peak_rss_mb":\#(f(peakMB)),"peak_over_model":\#(String(format: "%.2f", peakMB / modelMB)),"after_rss_mb":\#(f(afterMB)),"after_trim_rss_mb":\#(f(trimmedMB)),"clients_process_peak_rss_mb":\#(f(clientsPeakMB)),"seconds":\#(f(seconds))}"#)
        } else {
            print(String(format: "%d clients, %d round(s), payload %.1f MB, %d concurrent sends, %d in flight, %@ concurrent receives, %.1f s",
                         clients, rounds, modelMB, maxConcurrentSends, maxInFlight,
                         (maxConcurrentReceives > 0 ? String(maxConcurrentReceives) : "unbounded") as NSString, seconds))
            print(String(format: "server RSS: %.0f MB connected, peak %.0f MB (%.2f x payload), %.0f MB after the rounds, %.0f MB after malloc_trim",
                         connectedMB, peakMB, peakMB / modelMB, afterMB, trimmedMB))
            print(String(format: "client process peak RSS: %.0f MB (not included above)", clientsPeakMB))
        }
    }

    /// glibc's `malloc_trim(0)`: returns cached free memory to the system (looked up at run
    /// time; the Glibc module does not export it). Does nothing elsewhere.
    static func trimMalloc() {
        #if canImport(Glibc)
        typealias Trim = @convention(c) (Int) -> Int32
        if let symbol = dlsym(nil, "malloc_trim") { _ = unsafeBitCast(symbol, to: Trim.self)(0) }
        #endif
    }

    // MARK: Clients (the child process)

    private func runClients(port: Int, certificates directory: String) async throws {
        let quiet = Logger(label: "fed-bench") { _ in SwiftLogNoOpLogHandler() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<clients {
                let name = Self.clientName(i)
                var configuration = ClientConfiguration.mutualTLS(
                    credentials: try Credentials.load(certificateFile: "\(directory)/\(name).crt", keyFile: "\(directory)/\(name).key",
                                                      caFile: "\(directory)/ca.crt"),
                    hello: .with { $0.clientName = name })
                configuration.serverHostname = "localhost"
                configuration.logger = quiet
                configuration.chunkSize = chunkSize
                let connection = try await FederationClient.connect(host: "127.0.0.1", port: port, configuration: configuration)
                group.addTask {
                    for try await envelope in connection.inbound {
                        switch envelope.body {
                        case .fitRequest(let request):
                            try await connection.send(Envelope(.fitResult(.with {
                                $0.round = request.round; $0.numExamples = 1; $0.parameters = request.parameters
                            })))
                        case .goodbye:
                            await connection.close()
                        default:
                            break
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        print("clients_peak_rss_mb \(String(format: "%.1f", ProcessMemory.peakRSS()))")
    }
}

/// Counts free places; `acquire` waits for one.
private actor Slots {
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(_ count: Int) { free = count }

    func acquire() async {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { free += 1 } else { waiters.removeFirst().resume() }
    }
}

/// Answers by client name: `wait(for:)` returns once `arrived` was called for that client.
private actor Replies {
    private var waiting: [String: CheckedContinuation<Void, Never>] = [:]
    private var early: Set<String> = []
    private(set) var failures = 0

    func wait(for name: String) async {
        if early.remove(name) != nil { return }
        await withCheckedContinuation { waiting[name] = $0 }
    }

    func arrived(_ name: String, ok: Bool) {
        if !ok { failures += 1 }
        if let waiter = waiting.removeValue(forKey: name) { waiter.resume() } else { early.insert(name) }
    }
}
