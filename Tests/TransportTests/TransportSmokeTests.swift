import XCTest
@testable import Transport

final class TransportModuleTests: XCTestCase {
    func testModuleLinks() {}
}
