import NIOCore
import NIOEmbedded
import XCTest
@testable import Wire

final class StreamBacklogTests: XCTestCase {
    final class Counter: @unchecked Sendable { var n = 0 }

    /// Reads go on while fewer than `limit` chunks wait; held reads go on as the application
    /// processes chunks, as many as there is room for, and a held read whose connection is
    /// gone passes its turn on.
    func testReadsAreHeldWhileTheBacklogIsFullAndResumeAsItDrains() {
        let loop = EmbeddedEventLoop()
        let backlog = StreamBacklog(limit: 2)
        let a = Counter(), b = Counter(), c = Counter()
        XCTAssertTrue(backlog.admit(on: loop) { a.n += 1 })
        backlog.added()
        backlog.added()
        XCTAssertEqual(backlog.backlog, 2)
        XCTAssertFalse(backlog.admit(on: loop) { a.n += 1 })
        XCTAssertFalse(backlog.admit(on: loop) { b.n += 1 })
        XCTAssertFalse(backlog.admit(on: loop) { c.n += 1 })
        loop.run()
        XCTAssertEqual([a.n, b.n, c.n], [0, 0, 0], "a held read went on before any chunk was processed")
        backlog.processed()  // one slot free: the longest held read goes on
        loop.run()
        XCTAssertEqual([a.n, b.n, c.n], [1, 0, 0])
        backlog.processed()  // nothing waits: every held read goes on (up to the limit)
        loop.run()
        XCTAssertEqual([a.n, b.n, c.n], [1, 1, 1])
        XCTAssertEqual(backlog.backlog, 0)
        XCTAssertTrue(backlog.admit(on: loop) {})

        // A woken read whose connection has closed hands its turn to the next one held.
        backlog.added(); backlog.added()
        let d = Counter()
        XCTAssertFalse(backlog.admit(on: loop) { backlog.passOn() })
        XCTAssertFalse(backlog.admit(on: loop) { d.n += 1 })
        backlog.processed()
        loop.run()
        XCTAssertEqual(d.n, 1, "the turn of a closed connection was lost")
    }
}
