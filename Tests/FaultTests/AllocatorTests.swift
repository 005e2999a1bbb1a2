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
    func testFrameSizedBuffersAreNotFaultedInAgainForEveryFrame() throws {
        guard let symbol = dlsym(nil, "mallopt") else { throw XCTSkip("glibc's allocator is not in use") }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        defer { ProcessMemory.returnLargeBuffersToTheSystem() }
        _ = mallopt(-3, ProcessMemory.largeAllocationThreshold)  // M_MMAP_THRESHOLD fixed, as before
        _ = mallopt(-1, 128 << 10)  // M_TRIM_THRESHOLD: glibc's default
        let trimmed = frameCycles()
        XCTAssertGreaterThan(trimmed, 200 * 10, "the test does not see the faults it is about")  // 6,000-13,000 seen
        ProcessMemory.returnLargeBuffersToTheSystem()
        _ = frameCycles()  // the first frame may fault its pages in
        let kept = frameCycles()
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
