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
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            p.arguments = ["FaultTests.AllocatorTests/testFrameSizedBuffersAreNotFaultedInAgainForEveryFrame"]
            p.environment = ProcessInfo.processInfo.environment.merging(["FEDKIT_FRAME_FAULTS": mode]) { $1 }
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix("FRAME_FAULTS ") }),
                  let n = Int(line.dropFirst("FRAME_FAULTS ".count)) else {
                throw XCTSkip("the test bundle could not be run on its own (\(CommandLine.arguments[0]))")
            }
            return n
        }
        let trimmed = try child("trimmed"), kept = try child("kept")
        XCTAssertGreaterThan(trimmed, 200 * 10, "the test does not see the faults it is about")
        XCTAssertLessThan(kept, 200, "frames were faulted in again (\(kept) faults in 200 frames; \(trimmed) when trimmed)")
    }

    /// Buffers of `largeAllocationThreshold` and more still go back to the system when freed.
    func testLargeBuffersAreStillGivenBack() throws {
        guard dlsym(nil, "mallopt") != nil else { throw XCTSkip("glibc's allocator is not in use") }
        ProcessMemory.returnLargeBuffersToTheSystem()
        let size = 64 << 20
        let before = ProcessMemory.currentRSS()
        let p = malloc(size)!
        memset(p, 1, size)
        let during = ProcessMemory.currentRSS()
        free(p)
        let after = ProcessMemory.currentRSS()
        XCTAssertGreaterThan(during - before, 60, "filling 67 MB did not show in RSS")
        XCTAssertLessThan(after - before, 8, "a freed 67 MB buffer stayed resident")
    }
}
