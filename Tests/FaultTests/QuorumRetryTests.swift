import Foundation
import Transport
import Wire
import XCTest
@testable import Federated

/// A round attempt that misses its quorum is retried after a back-off, up to
/// `maxRoundAttempts`: a client that joins, is sampled and leaves cannot use the attempts up
/// in a moment, and a quorum that is never met stops the run with an error naming the round.
final class QuorumRetryTests: XCTestCase {
    /// The times at which a client received its fit requests, by round.
    final class Requests: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [(round: UInt64, at: ContinuousClock.Instant)] = []
        func append(_ round: UInt64) { lock.lock(); items.append((round, .now)); lock.unlock() }
        func of(round: UInt64) -> [ContinuousClock.Instant] { lock.lock(); defer { lock.unlock() }; return items.filter { $0.round == round }.map(\.at) }
        var count: Int { lock.lock(); defer { lock.unlock() }; return items.count }
    }

    /// Connects as "flap-0", waits for its fit request and leaves without answering.
    /// - Returns: the round it was asked to train.
    @Sendable static func joinAndLeave(port: Int, requests: Requests) async throws -> UInt64? {
        let c = try await InProcess.connect("flap-0", port: port, hello: InProcess.hello("flap-0", declaredExamples: 40, domain: "usps"))
        defer { Task { await c.close() } }
        for try await envelope in c.inbound {
            if case .fitRequest(let r) = envelope.body {
                requests.append(r.round)
                await c.close()
                return r.round
            }
        }
        return nil
    }

    func configuration(attempts: Int, backoff: Double) -> CoordinatorConfiguration {
        var config = InProcess.configuration(rounds: 2, minFit: 2, minClients: 2)
        config.maxRoundAttempts = attempts
        config.roundRetryBackoff = backoff
        return config
    }

    /// "flap-0" joins, is sampled and leaves three times in round 1, then stays: with four
    /// attempts allowed the round is retried after each failure, waiting at least the back-off
    /// (times the attempt number) between attempts, and completes at its fourth attempt.
    func testAClientThatJoinsAndLeavesIsWaitedForAndTheRoundCompletesWhenItStays() async throws {
        let backoff = 0.4
        let config = configuration(attempts: 4, backoff: backoff)
        let federation = try await InProcess.start(config)
        let (recorder, coordinator, port) = (federation.recorder, federation.coordinator, federation.port)
        let staying = try InProcess.runtime("flap-0", domain: .usps, model: config.model)
        let requests = Requests()
        let flapper = Task {
            for _ in 0..<3 { _ = try await QuorumRetryTests.joinAndLeave(port: port, requests: requests) }
            try await InProcess.serveHonestly(staying, port: port)
        }
        let metrics: [RoundMetrics]
        do {
            metrics = try await coordinator.run(connections: federation.server.connections)
        } catch {
            flapper.cancel()
            XCTFail("the run stopped with attempts left: \(error)\n" + recorder.all.suffix(20).joined(separator: "\n"))
            await federation.close()
            return
        }
        _ = try? await flapper.value
        await federation.close()

        XCTAssertEqual(metrics.map(\.round), [1, 2])
        XCTAssertEqual(metrics[0].attempts, 4, "round 1 should have completed at its 4th attempt")
        XCTAssertEqual(metrics[0].fit.map(\.client), ["flap-0", "mnist-0"])
        XCTAssertEqual(metrics[1].attempts, 1)
        let retries = recorder.all.filter { $0.contains("round 1: 1 update(s), 2 required; retrying") }
        XCTAssertEqual(retries.count, 3, recorder.all.joined(separator: "\n"))
        // The three requests it walked away from were of three attempts, a back-off apart.
        let times = requests.of(round: 1)
        XCTAssertEqual(times.count, 3)
        for k in 1..<times.count {
            let gap = (times[k] - times[k - 1]).seconds
            XCTAssertGreaterThanOrEqual(gap, backoff * Double(k), "attempt \(k + 1) started \(gap) s after attempt \(k); back-off is \(backoff * Double(k)) s")
        }
        print("join and leave: round 1 completed at attempt \(metrics[0].attempts) of \(config.maxRoundAttempts); gaps between attempts \(zip(times.dropFirst(), times).map { String(format: "%.2f", ($0 - $1).seconds) }) s (back-off \(backoff) s × attempt)")
    }

    /// The same client never stays: the run stops after exactly `maxRoundAttempts` attempts of
    /// round 1, with an error naming the round, the attempts and the quorum.
    func testAQuorumNeverMetStopsTheRunAfterExactlyMaxRoundAttempts() async throws {
        let config = configuration(attempts: 3, backoff: 0.2)
        let federation = try await InProcess.start(config)
        let (recorder, coordinator, port) = (federation.recorder, federation.coordinator, federation.port)
        let requests = Requests()
        let stop = ManagedFlag()
        let flapper = Task {
            while !stop.value { _ = try? await QuorumRetryTests.joinAndLeave(port: port, requests: requests) }
        }
        var thrown: Error?
        do {
            _ = try await coordinator.run(connections: federation.server.connections)
        } catch {
            thrown = error
        }
        stop.set()
        await federation.server.close()  // ends the sessions, so the flapping loop sees the flag
        flapper.cancel()
        _ = await flapper.result
        federation.honest.cancel()

        let error = try XCTUnwrap(thrown as? FederatedError, "the run did not fail: \(String(describing: thrown))")
        XCTAssertEqual(error, .roundAttemptsExhausted(round: 1, attempts: 3, answered: 1, required: 2))
        XCTAssertTrue(error.description.contains("round 1") && error.description.contains("3 attempts"), error.description)
        XCTAssertEqual(requests.of(round: 1).count, 3, "one request per attempt")
        XCTAssertEqual(recorder.all.filter { $0.contains("required; retrying") }.count, 2, recorder.all.joined(separator: "\n"))
        let completed = await coordinator.completedRound
        XCTAssertEqual(completed, 0)
        print("quorum never met: stopped after \(requests.of(round: 1).count) attempts: \(error)")
    }

    /// "flap-0" is sampled, then opens a second session under the same name before answering:
    /// the coordinator closes the first, and the attempt must not wait for an answer the new
    /// session was never asked for. It fails at once and is retried; the round takes far less
    /// than its timeout.
    func testAClientReconnectingDuringAnAttemptIsNotWaitedForUntilTheDeadline() async throws {
        var config = configuration(attempts: 2, backoff: 0.1)
        config.rounds = 1
        let federation = try await InProcess.start(config)
        let (recorder, coordinator, port) = (federation.recorder, federation.coordinator, federation.port)
        let second = try InProcess.runtime("flap-0", domain: .usps, model: config.model)
        let flapper = Task {
            let first = try await InProcess.connect("flap-0", port: port, hello: InProcess.hello("flap-0", declaredExamples: 40, domain: "usps"))
            for try await envelope in first.inbound { if case .fitRequest = envelope.body { break } }
            // Sampled: reconnect without answering or closing; the coordinator replaces the session.
            try await InProcess.serveHonestly(second, port: port)
        }
        let started = ContinuousClock.now
        let metrics = try await coordinator.run(connections: federation.server.connections)
        let elapsed = (ContinuousClock.now - started).seconds
        _ = try? await flapper.value
        await federation.close()

        XCTAssertEqual(metrics.map(\.attempts), [2])
        XCTAssertEqual(metrics[0].fit.map(\.client), ["flap-0", "mnist-0"])
        XCTAssertTrue(recorder.all.contains { $0.contains("client \"flap-0\" reconnected") }, recorder.all.joined(separator: "\n"))
        XCTAssertLessThan(elapsed, config.roundTimeout / 2, "attempt 1 waited for the replaced session until its deadline")
        print("reconnect during an attempt: round 1 done in \(String(format: "%.1f", elapsed)) s (round timeout \(config.roundTimeout) s), \(metrics[0].attempts) attempts")
    }
}
