import Foundation
import Queue
import Testing
import TestSupport

/// A token revoked with the admin CLI (another process) stops working on a running server at
/// once, even though the server caches token lookups.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct TokenRevocationTests {
    @Test func revokingInAnotherProcessTakesEffectImmediately() async throws {
        try await withScriptedModelServer { model in
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("alice")
                let second = try await harness.admin(["token", "create", "alice", "--label", "second"])
                    .split(separator: "\n").last.map(String.init) ?? ""
                try await harness.startServer()
                // Both tokens work, and the server has now cached both.
                #expect(try await harness.request("GET", "/v1/jobs", token: token).status == 200)
                #expect(try await harness.request("GET", "/v1/jobs", token: second).status == 200)

                let listing = try await harness.admin(["token", "list", "alice"])
                let secondID = try #require(listing.split(separator: "\n")
                    .first { $0.contains("\tsecond\t") }?.split(separator: "\t").first.map(String.init))
                try await harness.admin(["token", "revoke", secondID])

                // The revocation's notification reaches the server within moments; the cache's
                // 30 s lifetime is only the backstop for a lost notification.
                var status = 200
                let deadline = ContinuousClock.now + .seconds(5)
                while status == 200, ContinuousClock.now < deadline {
                    status = try await harness.request("GET", "/v1/jobs", token: second).status
                    if status == 200 { try await Task.sleep(for: .milliseconds(20)) }
                }
                #expect(status == 401)
                #expect(try await harness.request("GET", "/v1/jobs", token: token).status == 200)
            }
        }
    }
}
