import XCTest
import FedKitCLI
#if canImport(Glibc)
import Glibc
#endif

/// The coordinator raises its own open-file limit: one descriptor per client.
final class ProcessLimitsTests: XCTestCase {
    private func limits() -> rlimit {
        var l = rlimit()
        XCTAssertEqual(getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &l), 0)
        return l
    }

    private func setSoft(_ soft: UInt64) {
        var l = limits()
        l.rlim_cur = rlim_t(soft)
        XCTAssertEqual(setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &l), 0)
    }

    func testTheSoftOpenFileLimitIsRaisedToTheHardOne() throws {
        let original = limits()
        defer { setSoft(UInt64(original.rlim_cur)) }
        let hard = UInt64(original.rlim_max)
        let expected = min(hard, ProcessLimits.openFileCeiling)
        try XCTSkipIf(expected <= 256, "the hard limit (\(hard)) leaves nothing to raise")
        setSoft(256)  // as low as a restrictive service manager might leave it
        let raised = try XCTUnwrap(ProcessLimits.raiseOpenFileLimit())
        XCTAssertEqual(raised.before, 256)
        XCTAssertEqual(raised.after, expected)
        XCTAssertEqual(UInt64(limits().rlim_cur), expected)
        XCTAssertNil(ProcessLimits.raiseOpenFileLimit(), "a second call changed something")
    }
}
