import Foundation
import XCTest
@testable import Data

/// Pickled NumPy arrays, as the FedBN reference keeps Digits-Five. The pickles below were
/// written by NumPy 2.4 under Python 3.11 with this script (the numpy-1 variant renames
/// the module, as NumPy 1.x writes it, and Python loads it back):
///
/// # Writes the pickles FormatTests embeds (NumPy 2.4, Python 3.11).
/// import numpy as np, pickle, base64
/// def img(n, *shape):
///     return (np.arange(n * int(np.prod(shape)), dtype=np.int64) * 7 % 251).astype(np.uint8).reshape(n, *shape)
/// def b64(obj, proto):
///     return base64.b64encode(pickle.dumps(obj, proto)).decode()
/// out = {}
/// out["p5"] = b64((img(3, 4, 4), np.array([0, 1, 2], dtype=np.int64)), 5)
/// out["p4rgb"] = b64((img(2, 4, 4, 3), np.array([3, 4], dtype=np.int32)), 4)
/// out["p2"] = b64((img(2, 4, 4), np.array([5, 6], dtype=np.int64)), 2)
/// p2old = pickle.dumps((img(2, 4, 4), np.array([5, 6], dtype=np.int64)), 2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
/// out["p2numpy1"] = base64.b64encode(p2old).decode()
/// out["p5shared"] = b64((img(2, 4, 4), np.array([8, 9], dtype=np.uint8)), 5)
/// out["p4dict"] = b64({"images": img(1, 4, 4), "labels": np.array([7])}, 4)
/// out["p4float"] = b64((np.linspace(0, 1, 16, dtype=np.float32).reshape(1, 4, 4), np.array([1], dtype=np.int16)), 4)
/// out["bigendian"] = b64((img(1, 4, 4).astype(">f4"), np.array([1])), 4)
/// out["fortran"] = b64((np.asfortranarray(img(2, 4, 4)), np.array([1, 2])), 4)
/// out["objects"] = b64((img(1, 4, 4), np.array(["a"], dtype=object)), 4)
/// class Evil:
///     def __reduce__(self):
///         import os
///         return (os.system, ("true",))
/// out["evil"] = b64((Evil(), np.array([1])), 4)
/// # FedBN layout: MNIST partitions 0, 1, 2, 10 and test; SVHN channels-last
/// out["part0"] = b64((img(3, 4, 4), np.array([0, 1, 2])), 5)
/// out["part1"] = b64((img(2, 4, 4), np.array([3, 4])), 5)
/// out["part2"] = b64((img(1, 4, 4), np.array([6])), 5)
/// out["part10"] = b64((img(1, 4, 4), np.array([5])), 5)
/// out["test"] = b64((img(2, 4, 4), np.array([7, 8])), 5)
/// for k, v in out.items():
///     print(f'        "{k}": "{v}",')
/// # check the numpy-1 variant loads
/// a, b = pickle.loads(p2old); assert (b == [5, 6]).all()
final class PickleTests: XCTestCase {
    static let pickles: [String: String] = [
        "p5": "gAWV/wAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWMAAAAAAAAAAABw4VHCMqMTg/Rk1UW2JpcHd+hYyTmqGor7a9xMvS2eDn7vUBCA8WHSQrMjlAR06UjAVudW1weZSMBWR0eXBllJOUjAJ1MZSJiIeUUpQoSwOMAXyUTk5OSv////9K/////0sAdJRiSwNLBEsEh5SMAUOUdJRSlGgCKJYYAAAAAAAAAAAAAAAAAAAAAQAAAAAAAAACAAAAAAAAAJRoBowCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYksDhZRoDXSUUpSGlC4=",
        "p4rgb": "gASVPAEAAAAAAACMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAShLAksESwRLA3SUaAOMBWR0eXBllJOUjAJ1MZSJiIeUUpQoSwOMAXyUTk5OSv////9K/////0sAdJRiiUNgAAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tng5+71AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09rh6O/2AgkQFx4lLDM6QUhPVl1ka3J5gIeOlZyjlHSUYmgCaAVLAIWUaAeHlFKUKEsBSwKFlGgMjAJpNJSJiIeUUpQoSwOMATyUTk5OSv////9K/////0sAdJRiiUMIAwAAAAQAAACUdJRihpQu",
        "p2": "gAJjbnVtcHkuX2NvcmUubXVsdGlhcnJheQpfcmVjb25zdHJ1Y3QKcQBjbnVtcHkKbmRhcnJheQpxAUsAhXECY19jb2RlY3MKZW5jb2RlCnEDWAEAAABicQRYBgAAAGxhdGluMXEFhnEGUnEHh3EIUnEJKEsBSwJLBEsEh3EKY251bXB5CmR0eXBlCnELWAIAAAB1MXEMiYiHcQ1ScQ4oSwNYAQAAAHxxD05OTkr/////Sv////9LAHRxEGKJaANYLQAAAAAHDhUcIyoxOD9GTVRbYmlwd37ChcKMwpPCmsKhwqjCr8K2wr3DhMOLw5LDmXERaAWGcRJScRN0cRRiaABoAUsAhXEVaAeHcRZScRcoSwFLAoVxGGgLWAIAAABpOHEZiYiHcRpScRsoSwNYAQAAADxxHE5OTkr/////Sv////9LAHRxHWKJaANYEAAAAAUAAAAAAAAABgAAAAAAAABxHmgFhnEfUnEgdHEhYoZxIi4=",
        "p2numpy1": "gAJjbnVtcHkuY29yZS5tdWx0aWFycmF5Cl9yZWNvbnN0cnVjdApxAGNudW1weQpuZGFycmF5CnEBSwCFcQJjX2NvZGVjcwplbmNvZGUKcQNYAQAAAGJxBFgGAAAAbGF0aW4xcQWGcQZScQeHcQhScQkoSwFLAksESwSHcQpjbnVtcHkKZHR5cGUKcQtYAgAAAHUxcQyJiIdxDVJxDihLA1gBAAAAfHEPTk5OSv////9K/////0sAdHEQYoloA1gtAAAAAAcOFRwjKjE4P0ZNVFtiaXB3fsKFwozCk8KawqHCqMKvwrbCvcOEw4vDksOZcRFoBYZxElJxE3RxFGJoAGgBSwCFcRVoB4dxFlJxFyhLAUsChXEYaAtYAgAAAGk4cRmJiIdxGlJxGyhLA1gBAAAAPHEcTk5OSv////9K/////0sAdHEdYoloA1gQAAAABQAAAAAAAAAGAAAAAAAAAHEeaAWGcR9ScSB0cSFihnEiLg==",
        "p5shared": "gAWVtQAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWIAAAAAAAAAAABw4VHCMqMTg/Rk1UW2JpcHd+hYyTmqGor7a9xMvS2ZSMBW51bXB5lIwFZHR5cGWUk5SMAnUxlImIh5RSlChLA4wBfJROTk5K/////0r/////SwB0lGJLAksESwSHlIwBQ5R0lFKUaAIolgIAAAAAAAAACAmUaAlLAoWUaA10lFKUhpQu",
        "p4dict": "gASV/QAAAAAAAAB9lCiMBmltYWdlc5SMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAUsBSwRLBIeUaAWMBWR0eXBllJOUjAJ1MZSJiIeUUpQoSwOMAXyUTk5OSv////9K/////0sAdJRiiUMQAAcOFRwjKjE4P0ZNVFtiaZR0lGKMBmxhYmVsc5RoBGgHSwCFlGgJh5RSlChLAUsBhZRoDowCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYolDCAcAAAAAAAAAlHSUYnUu",
        "p4float": "gASVEQEAAAAAAACMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAUsBSwRLBIeUaAOMBWR0eXBllJOUjAJmNJSJiIeUUpQoSwOMATyUTk5OSv////9K/////0sAdJRiiUNAAAAAAImIiD2JiAg+zcxMPomIiD6rqqo+zczMPu/u7j6JiAg/mpkZP6uqKj+8uzs/zcxMP97dXT/v7m4/AACAP5R0lGJoAmgFSwCFlGgHh5RSlChLAUsBhZRoDIwCaTKUiYiHlFKUKEsDaBBOTk5K/////0r/////SwB0lGKJQwIBAJR0lGKGlC4=",
        "bigendian": "gASVGQEAAAAAAACMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAUsBSwRLBIeUaAOMBWR0eXBllJOUjAJmNJSJiIeUUpQoSwOMAT6UTk5OSv////9K/////0sAdJRiiUNAAAAAAEDgAABBYAAAQagAAEHgAABCDAAAQigAAEJEAABCYAAAQnwAAEKMAABCmgAAQqgAAEK2AABCxAAAQtIAAJR0lGJoAmgFSwCFlGgHh5RSlChLAUsBhZRoDIwCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYolDCAEAAAAAAAAAlHSUYoaULg==",
        "fortran": "gASVAQEAAAAAAACMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAUsCSwRLBIeUaAOMBWR0eXBllJOUjAJ1MZSJiIeUUpQoSwOMAXyUTk5OSv////9K/////0sAdJRiiEMgAHAcjDioVMQHdyOTP69byw5+KppGtmLSFYUxoU29admUdJRiaAJoBUsAhZRoB4eUUpQoSwFLAoWUaAyMAmk4lImIh5RSlChLA4wBPJROTk5K/////0r/////SwB0lGKJQxABAAAAAAAAAAIAAAAAAAAAlHSUYoaULg==",
        "objects": "gASV4wAAAAAAAACMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAUsBSwRLBIeUaAOMBWR0eXBllJOUjAJ1MZSJiIeUUpQoSwOMAXyUTk5OSv////9K/////0sAdJRiiUMQAAcOFRwjKjE4P0ZNVFtiaZR0lGJoAmgFSwCFlGgHh5RSlChLAUsBhZRoDIwCTziUiYiHlFKUKEsDaBBOTk5K/////0r/////Sz90lGKJXZSMAWGUYXSUYoaULg==",
        "evil": "gASVsQAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOUjAR0cnVllIWUUpSMFm51bXB5Ll9jb3JlLm11bHRpYXJyYXmUjAxfcmVjb25zdHJ1Y3SUk5SMBW51bXB5lIwHbmRhcnJheZSTlEsAhZRDAWKUh5RSlChLAUsBhZRoCYwFZHR5cGWUk5SMAmk4lImIh5RSlChLA4wBPJROTk5K/////0r/////SwB0lGKJQwgBAAAAAAAAAJR0lGKGlC4=",
        "part0": "gAWV/wAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWMAAAAAAAAAAABw4VHCMqMTg/Rk1UW2JpcHd+hYyTmqGor7a9xMvS2eDn7vUBCA8WHSQrMjlAR06UjAVudW1weZSMBWR0eXBllJOUjAJ1MZSJiIeUUpQoSwOMAXyUTk5OSv////9K/////0sAdJRiSwNLBEsEh5SMAUOUdJRSlGgCKJYYAAAAAAAAAAAAAAAAAAAAAQAAAAAAAAACAAAAAAAAAJRoBowCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYksDhZRoDXSUUpSGlC4=",
        "part1": "gAWV5wAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWIAAAAAAAAAAABw4VHCMqMTg/Rk1UW2JpcHd+hYyTmqGor7a9xMvS2ZSMBW51bXB5lIwFZHR5cGWUk5SMAnUxlImIh5RSlChLA4wBfJROTk5K/////0r/////SwB0lGJLAksESwSHlIwBQ5R0lFKUaAIolhAAAAAAAAAAAwAAAAAAAAAEAAAAAAAAAJRoBowCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYksChZRoDXSUUpSGlC4=",
        "part2": "gAWVzwAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWEAAAAAAAAAAABw4VHCMqMTg/Rk1UW2JplIwFbnVtcHmUjAVkdHlwZZSTlIwCdTGUiYiHlFKUKEsDjAF8lE5OTkr/////Sv////9LAHSUYksBSwRLBIeUjAFDlHSUUpRoAiiWCAAAAAAAAAAGAAAAAAAAAJRoBowCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYksBhZRoDXSUUpSGlC4=",
        "part10": "gAWVzwAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWEAAAAAAAAAAABw4VHCMqMTg/Rk1UW2JplIwFbnVtcHmUjAVkdHlwZZSTlIwCdTGUiYiHlFKUKEsDjAF8lE5OTkr/////Sv////9LAHSUYksBSwRLBIeUjAFDlHSUUpRoAiiWCAAAAAAAAAAFAAAAAAAAAJRoBowCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYksBhZRoDXSUUpSGlC4=",
        "test": "gAWV5wAAAAAAAACME251bXB5Ll9jb3JlLm51bWVyaWOUjAtfZnJvbWJ1ZmZlcpSTlCiWIAAAAAAAAAAABw4VHCMqMTg/Rk1UW2JpcHd+hYyTmqGor7a9xMvS2ZSMBW51bXB5lIwFZHR5cGWUk5SMAnUxlImIh5RSlChLA4wBfJROTk5K/////0r/////SwB0lGJLAksESwSHlIwBQ5R0lFKUaAIolhAAAAAAAAAABwAAAAAAAAAIAAAAAAAAAJRoBowCaTiUiYiHlFKUKEsDjAE8lE5OTkr/////Sv////9LAHSUYksChZRoDXSUUpSGlC4="
    ]

    func bytes(_ name: String) -> [UInt8] { [UInt8](Foundation.Data(base64Encoded: Self.pickles[name]!)!) }

    /// `img(n, *shape)` of the script: element i is i·7 mod 251.
    func img(_ count: Int) -> [UInt8] { (0..<count).map { UInt8($0 * 7 % 251) } }

    func testArraysOfEveryProtocolNumPyWrites() throws {
        for name in ["p5", "p2", "p2numpy1", "p5shared"] {
            let (x, y) = try Pickle.arrays(bytes(name), file: name)
            XCTAssertEqual(x.dtype, .u1, name)
            XCTAssertEqual([UInt8](x.data), img(x.count), name)
            XCTAssertEqual(x.shape[1...], [4, 4], name)
            XCTAssertEqual(y.shape, [x.shape[0]], name)
        }
        let (x5, y5) = try Pickle.arrays(bytes("p5"), file: "p5")
        XCTAssertEqual(x5.shape, [3, 4, 4])
        XCTAssertEqual((0..<3).map { y5.value($0) }, [0, 1, 2])
        XCTAssertEqual(y5.dtype, .i8)
        // The second array's dtype is the first one's, taken from the memo after BUILD set its byte order.
        let (_, shared) = try Pickle.arrays(bytes("p5shared"), file: "p5shared")
        XCTAssertEqual(shared.dtype, .u1)
        XCTAssertEqual((0..<2).map { shared.value($0) }, [8, 9])
        let (_, old) = try Pickle.arrays(bytes("p2numpy1"), file: "p2numpy1")
        XCTAssertEqual((0..<2).map { old.value($0) }, [5, 6])
        let (rgb, y4) = try Pickle.arrays(bytes("p4rgb"), file: "p4rgb")
        XCTAssertEqual(rgb.shape, [2, 4, 4, 3])
        XCTAssertEqual([UInt8](rgb.data), img(96))
        XCTAssertEqual(y4.dtype, .i4)
        XCTAssertEqual((0..<2).map { y4.value($0) }, [3, 4])
    }

    func testDatasetsConvertAsNumPyFilesDo() throws {
        let dir = NSTemporaryDirectory() + "fedkit-pickle-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        func file(_ name: String) throws -> String {
            let p = dir + "/" + name + ".pkl"
            try Foundation.Data(bytes(name)).write(to: URL(fileURLWithPath: p))
            return p
        }
        // Channels-last colour becomes N×C×H×W, exactly as from an .npy file.
        let rgb = try Pickle.load(try file("p4rgb"), domain: "svhn", shape: nil)
        XCTAssertEqual([rgb.count, rgb.channels, rgb.height, rgb.width], [2, 3, 4, 4])
        let hwc = img(96)
        XCTAssertEqual(Array(rgb.image(1))[0..<16], ArraySlice((0..<16).map { hwc[48 + $0 * 3] }))
        XCTAssertEqual(rgb.labels, [3, 4])
        let asNPY = try NumPy.dataset(images: NumPy.Array(dtype: .u1, shape: [2, 4, 4, 3], data: hwc[...]),
                                      labels: NumPy.Array(dtype: .i4, shape: [2], data: [3, 0, 0, 0, 4, 0, 0, 0][...]),
                                      imagesFile: "x", labelsFile: "y", domain: "svhn", shape: .digits, classCount: nil)
        XCTAssertEqual(try Pickle.load(try file("p4rgb"), domain: "svhn"), asNPY)
        // Float images in 0...1 scale to bytes; a dict with images and labels works too.
        let float = try Pickle.load(try file("p4float"), domain: "f", shape: nil)
        XCTAssertEqual(float.pixels.first, 0)
        XCTAssertEqual(float.pixels.last, 255)
        XCTAssertEqual(try Pickle.load(try file("p4dict"), domain: "d", shape: nil).labels, [7])
    }

    func testFedBNFolderReadsEveryPartitionInOrder() throws {
        let root = NSTemporaryDirectory() + "fedkit-fedbn-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/MNIST/partitions", withIntermediateDirectories: true)
        for (name, target) in [("part0", "partitions/train_part0"), ("part1", "partitions/train_part1"), ("part2", "partitions/train_part2"),
                               ("part10", "partitions/train_part10"), ("test", "test")] {
            try Foundation.Data(bytes(name)).write(to: URL(fileURLWithPath: root + "/MNIST/" + target + ".pkl"))
        }
        let mnist = try XCTUnwrap(DatasetFolder.load(root: root, domains: ["MNIST"]).first)
        XCTAssertEqual(mnist.name, "MNIST")
        XCTAssertEqual(mnist.train.labels, [0, 1, 2, 3, 4, 6, 5], "parts 0, 1, 2, 10 in the order of their numbers")
        XCTAssertEqual([mnist.train.channels, mnist.train.height, mnist.train.width], [3, 28, 28])
        XCTAssertEqual(mnist.test.labels, [7, 8])
        XCTAssertEqual(mnist.train.classCount, 9, "the largest label (8) + 1")
        // A first partition's images are the ones its own pickle holds, grey repeated to 3 channels.
        let part0 = try Pickle.load(root + "/MNIST/partitions/train_part0.pkl", domain: "MNIST")
        XCTAssertEqual(Array(mnist.train.pixels[0..<part0.pixels.count]), part0.pixels)
        // Without partitions, train.pkl is read.
        try FileManager.default.removeItem(atPath: root + "/MNIST/partitions")
        try FileManager.default.copyItem(atPath: root + "/MNIST/test.pkl", toPath: root + "/MNIST/train.pkl")
        XCTAssertEqual(try DatasetFolder.load(root: root, domains: ["MNIST"]).first?.train.labels, [7, 8])
    }

    func testWhatCannotBeReadIsRefusedByName() throws {
        func fails(_ name: String, _ words: String, bytes override: [UInt8]? = nil, line: UInt = #line) {
            XCTAssertThrowsError(try Pickle.arrays(override ?? bytes(name), file: "f/\(name).pkl"), line: line) { error in
                let text = "\(error)"
                XCTAssertTrue(error is DataError, text, line: line)
                XCTAssertTrue(text.contains("f/\(name).pkl"), text, line: line)
                XCTAssertTrue(text.contains(words), "expected \"\(words)\": \(text)", line: line)
            }
        }
        fails("evil", "calls posix.system, which is not a NumPy array constructor")
        fails("bigendian", "unsupported element type '>f4'")
        fails("fortran", "Fortran order")
        fails("objects", "an array of Python objects")
        let whole = bytes("p5")
        fails("cut", "truncated", bytes: Array(whole[0..<100]))
        fails("empty", "truncated", bytes: [])
        fails("text", "not a pickle of NumPy arrays", bytes: Array("hello, world".utf8))
        // Protocol 5 with out-of-band buffers: NEXT_BUFFER.
        fails("outofband", "out of band", bytes: [0x80, 0x05, 0x97, 0x2E])
        // A pickle of one array, not two.
        fails("one", "expected 2", bytes: Array(whole[0..<(whole.count - 4)]) + [0x85, 0x2E])
    }
}

extension PickleTests {
    /// Damaged pickles — bytes changed, cut, repeated, or nested without end — are refused
    /// with a DataError, never a crash.
    func testDamagedPicklesAreRefusedNotCrashedOn() throws {
        var state: UInt64 = 0x5EED
        func next() -> Int {  // SplitMix64
            state &+= 0x9E3779B97F4A7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
            z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
            return Int(truncatingIfNeeded: (z ^ (z >> 31)) >> 1)
        }
        let seeds = ["p5", "p4rgb", "p2", "p2numpy1", "p5shared", "p4dict"].map(bytes)
        var refused = 0
        for i in 0..<3000 {
            var b = seeds[i % seeds.count]
            switch next() % 4 {
            case 0: for _ in 0...(next() % 3) { b[next() % b.count] = UInt8(truncatingIfNeeded: next()) }
            case 1: b = Array(b[0..<(next() % b.count)])
            case 2: let k = next() % b.count; b.insert(contentsOf: b[k..<min(b.count, k + 1 + next() % 16)], at: next() % b.count)
            default: b[next() % b.count] = [0x85, 0x29, 0x74, 0x52, 0x62, 0x2E, 0x94, 0x68][next() % 8]
            }
            do { _ = try Pickle.arrays(b, file: "fuzz") } catch is DataError { refused += 1 }
        }
        XCTAssertGreaterThan(refused, 1000)
        // A million nested one-element tuples: refused before they could be freed recursively.
        let nested: [UInt8] = [0x80, 0x04, 0x4B, 0x00] + [UInt8](repeating: 0x85, count: 1_000_000) + [0x2E]
        XCTAssertThrowsError(try Pickle.arrays(nested, file: "nested")) { XCTAssertTrue("\($0)".contains("more than 10000"), "\($0)") }
    }
}
