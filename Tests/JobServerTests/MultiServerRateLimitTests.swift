import Foundation
import Queue
import Testing
import TestSupport

/// One rate limit held by two `jobserver serve` processes on one store: the limiter's state
/// lives in the store, so a burst spread over both servers lets exactly the allowed number
/// through, the limit recovers at its rate, and other users are not affected.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct MultiServerRateLimitTests {
    static func submission(_ n: Int) -> JSONValue {
        ["type": "generate", "project": "p", "prompt": .string("burst \(n)")]
    }

    /// Timing-proof: the burst is counted against the units the rate can have added while it
    /// ran (none unless it took longer than one emission interval, 5 s), and the recovery
    /// against the whole test's duration; the exact GCRA arithmetic is the store conformance
    /// suite's, on a manual clock.
    @Test func aBurstOverTwoServersGetsExactlyTheBurstThroughAndRecoversAtTheRate() async throws {
        try await withScriptedModelServer { model in
            try await withServiceHarness(model: model) { harness in
                let alice = try await harness.createUser("alice")
                let bob = try await harness.createUser("bob")
                try await harness.admin(["user", "limits", "alice", "--rate", "12/min", "--burst", "5"])
                try await harness.startServer()
                let servers = [harness.baseURL, try await harness.startAdditionalServer()]
                let interval = 5.0
                let started = ContinuousClock.now

                // 20 concurrent submissions, alternating between the two servers.
                let replies = try await withThrowingTaskGroup(of: ServiceHarness.Reply.self) { group in
                    for n in 0..<20 {
                        group.addTask {
                            try await harness.request("POST", "/v1/jobs", token: alice, json: Self.submission(n),
                                                      baseURL: servers[n % 2])
                        }
                    }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let burstSeconds = Self.seconds(ContinuousClock.now - started)
                let accepted = replies.filter { $0.status == 202 }
                let refused = replies.filter { $0.status == 429 }
                #expect(accepted.count >= 5 && accepted.count <= 5 + Int(burstSeconds / interval),
                        "\(accepted.count) admitted in \(burstSeconds) s; statuses \(replies.map(\.status))")
                #expect(accepted.count + refused.count == 20)
                for reply in accepted {
                    #expect(reply.header("RateLimit-Policy") == #""submit";q=5;w=25"#)
                    #expect(reply.header("RateLimit")?.hasPrefix(#""submit";r="#) == true)
                }
                for reply in refused {
                    #expect(reply.json?["error"]?["code"]?.stringValue == "E002")
                    #expect(reply.header("Retry-After").flatMap(Int.init).map { (1...5).contains($0) } == true, "\(reply.headers)")
                    #expect(reply.header("RateLimit-Policy") == #""submit";q=5;w=25"#)
                    #expect(reply.header("RateLimit")?.hasPrefix(#""submit";r=0;t="#) == true)
                }
                let store = try SQLiteJobStore(path: harness.dataDirectory + "/jobs.sqlite3")
                let user = try #require(try await store.user(named: "alice"))
                #expect(try await store.jobs(userID: user.id, filter: JobFilter(), after: nil, limit: 100).count == accepted.count)

                // Bob's bucket is his own, on either server.
                for server in servers {
                    let reply = try await harness.request("POST", "/v1/jobs", token: bob, json: Self.submission(0), baseURL: server)
                    #expect(reply.status == 202, "\(reply.text)")
                }

                // A client that honours Retry-After gets in, on either server.
                var wait = try #require(refused.compactMap { $0.header("Retry-After").flatMap(Int.init) }.max())
                for round in 0..<2 {
                    try await Task.sleep(for: .seconds(wait))
                    let retried = try await harness.request("POST", "/v1/jobs", token: alice, json: Self.submission(100 + round),
                                                            baseURL: servers[round % 2])
                    #expect(retried.status == 202, "after waiting \(wait) s: \(retried.text)")
                    let next = try await harness.request("POST", "/v1/jobs", token: alice, json: Self.submission(200 + round),
                                                         baseURL: servers[(round + 1) % 2])
                    wait = next.header("Retry-After").flatMap(Int.init) ?? Int(interval)
                }
                // Never more than the burst plus one unit per interval over the whole test.
                let total = try await store.jobs(userID: user.id, filter: JobFilter(), after: nil, limit: 100).count
                let elapsed = Self.seconds(ContinuousClock.now - started)
                #expect(total >= accepted.count + 2 && total <= 5 + Int(elapsed / interval), "\(total) admitted in \(elapsed) s")
            }
        }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}
