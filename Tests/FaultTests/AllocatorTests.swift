import XCTest
import FedKitCLI
#if canImport(Glibc)
import Glibc
#endif

/// The daemons' allocator settings: large buffers mapped on their own, frame-sized ones kept.
final class AllocatorTests: XCTestCase {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32

    /// Page faults this thread takes while `body` runs.
    func minorFaults(_ body: () -> Void) -> Int {
        var before = rusage(), after = rusage()
        getrusage(__rusage_who_t(1), &before)  // RUSAGE_THREAD
        body()
        getrusage(__rusage_who_t(1), &after)
        return after.ru_minflt - before.ru_minflt
    }

    /// A frame-sized buffer (a 256 KiB chunk and its header) allocated, filled and freed over
    /// and over, as every chunk sent or received is, 200 times.
    func frameCycles() -> Int {
        minorFaults {
            for _ in 0..<200 {
                let p = malloc((256 << 10) + 64)!
                memset(p, 1, (256 << 10) + 64)
                free(p)
            }
        }
    }

    /// Runs one test of this class alone in a fresh process (this test bundle, with
    /// `environment` added), and returns what follows `marker` on the line it prints.
    func runAlone(_ test: String, _ environment: [String: String], printing marker: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        p.arguments = ["FaultTests.AllocatorTests/\(test)"]
        p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(marker) }) else {
            throw XCTSkip("the test bundle could not be run on its own (\(CommandLine.arguments[0]))")
        }
        return String(line.dropFirst(marker.count))
    }

    /// With the daemons' settings the memory of a freed frame serves the next one: no page
    /// faults after the first. With the mapping threshold fixed and glibc's default trim
    /// threshold (128 KiB, below a frame), frames fault their 65 pages in again and again.
    ///
    /// Measured in a fresh process each (this test bundle, running only this test): in this
    /// one, what earlier tests left in the heap decides whether a frame comes from its top.
    func testFrameSizedBuffersAreNotFaultedInAgainForEveryFrame() throws {
        guard let symbol = dlsym(nil, "mallopt") else { throw XCTSkip("glibc's allocator is not in use") }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        if let mode = ProcessInfo.processInfo.environment["FEDKIT_FRAME_FAULTS"] {
            ProcessMemory.returnLargeBuffersToTheSystem()
            if mode == "trimmed" { _ = mallopt(-1, 128 << 10) }  // M_TRIM_THRESHOLD: glibc's default
            _ = frameCycles()  // the first frames may fault their pages in
            print("FRAME_FAULTS \(frameCycles())")
            return
        }
        func child(_ mode: String) throws -> Int {
            let line = try runAlone("testFrameSizedBuffersAreNotFaultedInAgainForEveryFrame", ["FEDKIT_FRAME_FAULTS": mode], printing: "FRAME_FAULTS ")
            guard let n = Int(line) else { throw XCTSkip("unreadable FRAME_FAULTS \(line)") }
            return n
        }
        let trimmed = try child("trimmed"), kept = try child("kept")
        XCTAssertGreaterThan(trimmed, 200 * 10, "the test does not see the faults it is about")
        XCTAssertLessThan(kept, 200, "frames were faulted in again (\(kept) faults in 200 frames; \(trimmed) when trimmed)")
    }

    /// Buffers of `largeAllocationThreshold` and more still go back to the system when freed.
    ///
    /// Checked on the buffer's own pages (`mincore`): resident when filled, no longer mapped
    /// once freed. An 8 MiB buffer after a 16 MiB one, which glibc's default settings keep
    /// (freeing the 16 MiB buffer raises its threshold to 16 MiB). In a fresh process each:
    /// in this one, a thread started meanwhile can map its stack where the buffer was (one CI
    /// dry run saw the range mapped again), and other threads move the process's RSS (another
    /// saw a 67 MB fill add 55 MB, when this test measured RSS).
    func testLargeBuffersAreStillGivenBack() throws {
        guard dlsym(nil, "mallopt") != nil else { throw XCTSkip("glibc's allocator is not in use") }
        if let mode = ProcessInfo.processInfo.environment["FEDKIT_LARGE_BUFFER"] {
            if mode == "daemons" { ProcessMemory.returnLargeBuffersToTheSystem() }
            let larger = malloc(16 << 20)!
            memset(larger, 1, 16 << 20)
            free(larger)
            let size = 8 << 20, page = Int(sysconf(Int32(_SC_PAGESIZE)))
            let p = malloc(size)!
            memset(p, 1, size)
            // The pages that lie wholly inside the buffer.
            let start = (Int(bitPattern: p) + page - 1) / page * page
            let count = (Int(bitPattern: p) + size - start) / page
            let base = UnsafeMutableRawPointer(bitPattern: start)!
            var resident = [UInt8](repeating: 0, count: count)
            let filled = mincore(base, count * page, &resident) == 0 ? resident.filter { $0 & 1 == 1 }.count : -1
            free(p)
            let mapped = mincore(base, count * page, &resident) == 0
            print("LARGE_BUFFER \(filled) \(count) \(mapped ? "mapped" : "unmapped")")
            return
        }
        func child(_ mode: String) throws -> (filled: Int, pages: Int, mapped: Bool) {
            let fields = try runAlone("testLargeBuffersAreStillGivenBack", ["FEDKIT_LARGE_BUFFER": mode], printing: "LARGE_BUFFER ").split(separator: " ")
            guard fields.count == 3, let filled = Int(fields[0]), let pages = Int(fields[1]) else { throw XCTSkip("unreadable LARGE_BUFFER \(fields)") }
            return (filled, pages, fields[2] == "mapped")
        }
        let daemons = try child("daemons"), glibc = try child("default")
        XCTAssertEqual(daemons.filled, daemons.pages, "filling 8 MiB did not make its pages resident")
        XCTAssertFalse(daemons.mapped, "a freed 8 MiB buffer is still mapped with the daemons' settings")
        XCTAssertTrue(glibc.mapped, "the test does not see what it is about: glibc's default gave the buffer back too")
    }
}
