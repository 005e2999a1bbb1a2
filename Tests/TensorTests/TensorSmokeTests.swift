import XCTest
@testable import Tensor

final class TensorModuleTests: XCTestCase {
    func testModuleLinks() {}
}
