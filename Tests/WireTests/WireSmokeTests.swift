import XCTest
@testable import Wire

final class WireModuleTests: XCTestCase {
    func testModuleLinks() {}
}
