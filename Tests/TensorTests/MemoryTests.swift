import Foundation
import XCTest
@testable import Tensor

final class MemoryTests: XCTestCase {
    /// Zeroing that gives pages back clears exactly the bytes asked for, whatever their
    /// alignment, and the memory stays usable.
    func testZeroReleasingPagesClearsExactlyTheRangeAskedFor() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let size = 8 * page
        let base = UnsafeMutableRawPointer.allocate(byteCount: size, alignment: page)
        defer { base.deallocate() }
        let cases: [(start: Int, count: Int)] = [
            (100, 3 * page + 50),    // partial pages at both ends, whole pages inside
            (page, 2 * page),        // whole pages only
            (page + 10, 100),        // inside one page
            (0, 0),                  // nothing
            (page - 1, 2),           // across one page boundary
            (0, size),               // all of it
        ]
        for c in cases {
            memset(base, 0xAB, size)
            zeroReleasingPages(base + c.start, byteCount: c.count)
            let bytes = UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: size)
            for (i, b) in bytes.enumerated() {
                let inside = i >= c.start && i < c.start + c.count
                guard b == (inside ? 0 : 0xAB) else { return XCTFail("\(c): byte \(i) is \(b)") }
            }
            memset(base, 0x5C, size)  // written again after being given back
            XCTAssertTrue(UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt8.self), count: size).allSatisfy { $0 == 0x5C }, "\(c)")
        }
    }

    func testATensorZeroedReleasingMemoryReadsZeroAndCanBeWrittenAgain() {
        let t = Tensor(shape: [1000, 1001], repeating: 3)
        let view = t.slice(10..<20)
        t.zeroReleasingMemory()
        XCTAssertTrue(t.buffer.allSatisfy { $0 == 0 })
        view.fill(2)
        XCTAssertEqual(t.values.filter { $0 == 2 }.count, 10 * 1001)
        XCTAssertEqual(t[10 * 1001], 2)
        XCTAssertEqual(t[10 * 1001 - 1], 0)
    }
}
