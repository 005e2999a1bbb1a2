import XCTest
@testable import Data

final class DataModuleTests: XCTestCase {
    func testModuleLinks() {}
}
