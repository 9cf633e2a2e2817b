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

    @Test func aBurstOverTwoServersGetsExactlyTheBurstThroughAndRecoversAtTheRate() async throws {
        try await withScriptedModelServer { model in
            try await withServiceHarness(model: model) { harness in
                let alice = try await harness.createUser("alice")
                let bob = try await harness.createUser("bob")
                try await harness.admin(["user", "limits", "alice", "--rate", "60/min", "--burst", "5"])
                try await harness.startServer()
                let servers = [harness.baseURL, try await harness.startAdditionalServer()]

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
                let accepted = replies.filter { $0.status == 202 }
                let refused = replies.filter { $0.status == 429 }
                #expect(accepted.count == 5, "statuses \(replies.map(\.status))")
                #expect(refused.count == 15)
                for reply in refused {
                    #expect(reply.json?["error"]?["code"]?.stringValue == "E002")
                    #expect(reply.header("Retry-After").flatMap(Int.init).map { (1...5).contains($0) } == true, "\(reply.headers)")
                    #expect(reply.header("RateLimit-Policy") == #""submit";q=5;w=5"#)
                    #expect(reply.header("RateLimit")?.hasPrefix(#""submit";r=0;t="#) == true)
                }
                let remaining = accepted.compactMap { $0.header("RateLimit") }.sorted()
                #expect(remaining.map { $0.prefix(13) } == ["\"submit\";r=0;", "\"submit\";r=1;", "\"submit\";r=2;",
                                                            "\"submit\";r=3;", "\"submit\";r=4;"], "\(remaining)")
                let store = try SQLiteJobStore(path: harness.dataDirectory + "/jobs.sqlite3")
                let user = try #require(try await store.user(named: "alice"))
                #expect(try await store.jobs(userID: user.id, filter: JobFilter(), after: nil, limit: 100).count == 5)

                // Bob's bucket is his own, on either server.
                for server in servers {
                    let reply = try await harness.request("POST", "/v1/jobs", token: bob, json: Self.submission(0), baseURL: server)
                    #expect(reply.status == 202, "\(reply.text)")
                }

                // A client that honours Retry-After gets in: one unit per second comes back, no more.
                var last = try #require(refused.last)
                for round in 0..<2 {
                    let wait = try #require(last.header("Retry-After").flatMap(Int.init))
                    try await Task.sleep(for: .seconds(wait))
                    let retried = try await harness.request("POST", "/v1/jobs", token: alice, json: Self.submission(100 + round),
                                                            baseURL: servers[round % 2])
                    #expect(retried.status == 202, "after waiting \(wait) s: \(retried.text)")
                    last = try await harness.request("POST", "/v1/jobs", token: alice, json: Self.submission(200 + round),
                                                     baseURL: servers[(round + 1) % 2])
                    #expect(last.status == 429, "the next unit is a second away")
                }
                #expect(try await store.jobs(userID: user.id, filter: JobFilter(), after: nil, limit: 100).count == 7)
            }
        }
    }
}
