import Foundation
import XCTest
@testable import Data

final class ReproducibilityTests: XCTestCase {
    func testPortableMathAgreesWithLibm() {
        var worst = 0.0
        for i in -2000...2000 {
            let x = Double(i) * 0.01
            worst = max(worst, abs(PortableMath.sin(x) - Foundation.sin(x)), abs(PortableMath.cos(x) - Foundation.cos(x)))
            let e = Double(i) * 0.05
            worst = max(worst, abs(PortableMath.exp(e) - Foundation.exp(e)) / Foundation.exp(e))
        }
        for i in 1...4000 {
            let x = Double(i) * 0.37e-3 * Double(i)
            worst = max(worst, abs(PortableMath.log(x) - Foundation.log(x)) / max(1, abs(Foundation.log(x))))
        }
        XCTAssertLessThan(worst, 1e-13)
        XCTAssertEqual(PortableMath.log(1), 0)
        XCTAssertEqual(PortableMath.exp(0), 1)
        XCTAssertEqual(PortableMath.pow(8, 1.0 / 3), 2, accuracy: 1e-14)
    }

    /// FNV-1a of bytes, to pin generated data in a few characters.
    func fingerprint<C: Collection>(_ bytes: C) -> UInt64 where C.Element == UInt8 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in bytes { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }

    /// The generator and the partitioners must give these exact bytes on every
    /// machine. If an intended change to the generator breaks this test, update the
    /// fingerprints (and say so: earlier results are no longer reproducible).
    func testPinnedFingerprints() throws {
        var prints: [String: UInt64] = [:]
        for domain in Digits5.Domain.allCases {
            prints[domain.rawValue] = fingerprint(Digits5.generate(domain: domain, count: 20, seed: 2024).pixels)
        }
        let labels = Digits5.generate(domain: .mnist, count: 600, seed: 7).labels
        let clients = try Partitioner.partition(trainLabels: [labels], domainNames: ["mnist"], spec: .dirichlet(alpha: 0.3),
                                                clientsPerDomain: 6, fraction: 0.5, seed: 7)
        prints["dirichlet"] = fingerprint(clients.flatMap { c in c.trainIndices.flatMap { [UInt8($0 & 0xFF), UInt8($0 >> 8)] } })
        print("fingerprints:", prints.sorted { $0.key < $1.key }.map { "\"\($0.key)\": \($0.value)" }.joined(separator: ", "))
        XCTAssertEqual(prints, pinned)
    }

    let pinned: [String: UInt64] = [
        "dirichlet": 1_932_551_339_782_264_033, "mnist": 16_323_225_068_939_028_330, "mnistm": 3_484_107_792_994_371_100,
        "svhn": 8_551_477_982_455_697_173, "synth": 12_773_119_285_714_693_060, "usps": 16_360_945_648_630_831_484,
    ]
}
