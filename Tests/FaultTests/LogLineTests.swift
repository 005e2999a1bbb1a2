import Foundation
import Logging
import XCTest
@testable import FedKitCLI

/// Daemons' log records are read by machines (`--log-format json`) and by people: the time
/// stamp must be ISO 8601 in UTC and agree with the clock.
final class LogLineTests: XCTestCase {
    func testTimestampsAreISO8601UTCAndAgreeWithTheClock() throws {
        let before = Date()
        let stamp = LineLogHandler.timestamp()
        let after = Date()
        XCTAssertNotNil(stamp.range(of: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"#, options: .regularExpression), stamp)
        let parsed = try XCTUnwrap(ISO8601DateFormatter().date(from: stamp), stamp)
        XCTAssertGreaterThanOrEqual(parsed.timeIntervalSince1970, before.timeIntervalSince1970.rounded(.down))
        XCTAssertLessThanOrEqual(parsed.timeIntervalSince1970, after.timeIntervalSince1970)
    }
}
