import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobServer
import Logging
import Queue
import TestSupport
import Testing

/// The limit answers of the HTTP API through the router: the IETF rate-limit fields on every
/// submission answer, `429 E002` / `503 E015` with `Retry-After`, `GET /v1/me`, and the disk
/// quota on uploads. The store is a real SQLite file on a manual clock (the figures are exact
/// however slowly the test runs); limits are set through it.
@Suite struct LimitHeaderTests {
    static let policy = HTTPField.Name("RateLimit-Policy")!
    static let rateLimit = HTTPField.Name("RateLimit")!

    /// Runs `body` against a router admitting with `admission`.
    func withLimitedAPI(
        _ admission: Admission = Admission(),
        _ body: @escaping @Sendable (APIFixture, any TestClientProtocol) async throws -> Void
    ) async throws {
        try await withTemporaryDirectory(prefix: "limits-api-") { directory in
            let store = try SQLiteJobStore(path: directory + "/jobs.sqlite", clock: ManualClock())
            let fixture = APIFixture(
                directory: directory, store: store, workspaces: WorkspaceStore(root: directory + "/workspaces"),
                alice: try await APIFixture.addUser("alice", to: store), bob: try await APIFixture.addUser("bob", to: store))
            var logger = Logger(label: "limit-tests")
            logger.logLevel = .critical
            let router = buildRouter(store: fixture.store, workspaces: fixture.workspaces, admission: admission)
            try await Application(router: router, logger: logger).test(.router) { client in
                try await body(fixture, client)
            }
        }
    }

    @Test func everySubmissionAnswerCarriesTheRateFieldsAndTheRefusalARetryAfter() async throws {
        try await withLimitedAPI { fixture, client in
            // One unit a minute, two at once.
            _ = try await fixture.store.updateLimits(for: .user(fixture.alice.id)) {
                $0.rate = .value(.perMinute(1)); $0.burst = .value(2)
            }
            let first = try await client.submit(#"{"type":"generate","project":"p","prompt":"one"}"#, as: fixture.alice)
            #expect(first.status == .accepted, "\(first)")
            #expect(first.headers[Self.policy] == #""submit";q=2;w=120"#)
            #expect(first.headers[Self.rateLimit] == #""submit";r=1;t=60"#)
            let second = try await client.submit(#"{"type":"generate","project":"p","prompt":"two"}"#, as: fixture.alice)
            #expect(second.headers[Self.rateLimit] == #""submit";r=0;t=120"#)
            #expect(second.headers[.retryAfter] == nil)

            let refused = try await client.submit(#"{"type":"generate","project":"p","prompt":"three"}"#, as: fixture.alice)
            expectError(refused, .tooManyRequests, .rateLimit)
            #expect(refused.headers[.retryAfter] == "60")
            #expect(refused.headers[Self.policy] == #""submit";q=2;w=120"#)
            #expect(refused.headers[Self.rateLimit] == #""submit";r=0;t=120"#)
            #expect(refused.errorDetails?["limit"]?.stringValue == "rate")
            #expect(refused.errorDetails?["retry_after_s"]?.intValue == 60)
            #expect(refused.json?["error"]?["retryable"]?.boolValue == true)
            #expect(try await fixture.store.jobs(userID: fixture.alice.id, filter: JobFilter(), after: nil, limit: 10).count == 2)

            // Bob's rate is his own (unlimited in this store): no fields at all.
            let bobs = try await client.submit(#"{"type":"generate","project":"p","prompt":"b"}"#, as: fixture.bob)
            #expect(bobs.status == .accepted && bobs.headers[Self.rateLimit] == nil)
        }
    }

    @Test func overMaxQueuedIs429AndAFullQueueIs503() async throws {
        try await withLimitedAPI(Admission(maxQueueDepth: 3)) { fixture, client in
            _ = try await fixture.store.updateLimits(for: .user(fixture.alice.id)) { $0.maxQueued = .value(2) }
            for n in 0..<2 { _ = try await client.submitJob(as: fixture.alice, prompt: "q\(n)") }
            let queued = try await client.submit(#"{"type":"generate","project":"p","prompt":"x"}"#, as: fixture.alice)
            expectError(queued, .tooManyRequests, .rateLimit)
            #expect(queued.headers[.retryAfter] == String(Admission.drainRetryAfterSeconds))
            #expect(queued.errorDetails?["limit"]?.stringValue == "max_queued")
            #expect(queued.errorDetails?["max_queued"]?.intValue == 2)

            _ = try await client.submitJob(as: fixture.bob)
            let full = try await client.submit(#"{"type":"generate","project":"p","prompt":"x"}"#, as: fixture.bob)
            expectError(full, .serviceUnavailable, .queueFull)
            #expect(full.headers[.retryAfter] == String(Admission.drainRetryAfterSeconds))
            #expect(full.errorDetails?["limit"]?.stringValue == "queue_depth")
            #expect(full.errorDetails?["max_queue_depth"]?.intValue == 3)
        }
    }

    @Test func meShowsIdentityLimitsAndUsage() async throws {
        try await withLimitedAPI { fixture, client in
            let store = fixture.store
            _ = try await store.updateLimits(for: .defaults) { $0.kindCosts = ["generate": 3] }
            _ = try await store.updateLimits(for: .user(fixture.alice.id)) {
                $0.rate = .value(.perMinute(30)); $0.burst = .value(5); $0.maxRunning = .value(2); $0.maxQueued = .value(50)
                $0.dailyTokens = .value(100_000); $0.dailyCostMicroUSD = .value(2_500_000); $0.diskQuotaBytes = .value(1 << 20)
            }
            let put = try await client.send(.put, "/v1/projects/app/files/a.txt", as: fixture.alice, bytes: Array("12345".utf8))
            #expect(put.status == .created)
            _ = try await client.submitJob(as: fixture.alice)

            let me = try await client.send(.get, "/v1/me", as: fixture.alice)
            #expect(me.status == .ok, "\(me)")
            let body = try #require(me.json)
            #expect(body["user"]?["name"]?.stringValue == "alice")
            #expect(body["user"]?["id"]?.stringValue == fixture.alice.id.rawValue)
            let limits = try #require(body["limits"])
            #expect(limits["rate"]?["limit"]?.intValue == 30 && limits["rate"]?["period_s"]?.intValue == 60)
            #expect(limits["burst"]?.intValue == 5 && limits["max_running"]?.intValue == 2 && limits["max_queued"]?.intValue == 50)
            #expect(limits["daily_tokens"]?.intValue == 100_000 && limits["daily_cost_usd"]?.doubleValue == 2.5)
            #expect(limits["disk_quota_bytes"]?.intValue == 1 << 20)
            #expect(limits["kind_costs"]?["generate"]?.intValue == 3 && limits["kind_costs"]?["review"]?.intValue == 1)
            let usage = try #require(body["usage"])
            #expect(usage["queued_jobs"]?.intValue == 1 && usage["queued_cost"]?.intValue == 3)
            #expect(usage["running_jobs"]?.intValue == 0 && usage["tokens_today"]?.intValue == 0)
            #expect(usage["rate_remaining"]?.intValue == 2, "the generate spent 3 of 5")
            #expect(usage["disk_bytes"]?.intValue == 5)
            #expect(me.headers[Self.rateLimit] == #""submit";r=2;t=6"#)
            try OpenAPIRouteTests.expectShape(me.json, "Me", in: try OpenAPIRouteTests.loadSpec())

            // Bob: the bare store's unlimited built-ins.
            let bobs = try await client.send(.get, "/v1/me", as: fixture.bob).json
            #expect(bobs?["limits"]?["rate"] == .null && bobs?["limits"]?["max_running"] == .null)
            #expect(bobs?["usage"]?["rate_remaining"] == .null)
        }
    }

    @Test func uploadsPastTheDiskQuotaAre413FileAccess() async throws {
        try await withLimitedAPI { fixture, client in
            _ = try await fixture.store.updateLimits(for: .user(fixture.alice.id)) { $0.diskQuotaBytes = .value(100) }
            let fits = try await client.send(.put, "/v1/projects/one/files/a.bin", as: fixture.alice, bytes: Array(repeating: 1, count: 60))
            #expect(fits.status == .created)
            // The quota is for all projects together: 60 + 60 is over 100.
            let over = try await client.send(.put, "/v1/projects/two/files/b.bin", as: fixture.alice, bytes: Array(repeating: 2, count: 60))
            expectError(over, .contentTooLarge, .fileAccess)
            #expect(over.errorDetails?["quota"]?.stringValue == "disk_quota_bytes")
            #expect(over.errorDetails?["limit"]?.intValue == 100 && over.errorDetails?["bytes"]?.intValue == 120)
            // Replacing the file in place counts the new size only.
            let replaced = try await client.send(.put, "/v1/projects/one/files/a.bin", as: fixture.alice, bytes: Array(repeating: 3, count: 90))
            #expect(replaced.status == .ok)
            // An archive upload counts what it would extract.
            let archive = try await client.send(.get, "/v1/projects/one/archive", as: fixture.alice)
            let copy = try await client.send(.put, "/v1/projects/copy/archive", as: fixture.alice, bytes: archive.bytes)
            expectError(copy, .contentTooLarge, .fileAccess)
            #expect(try await client.send(.get, "/v1/projects/copy/files", as: fixture.alice).status == .notFound)
            // Bob has no quota in this store.
            let bobs = try await client.send(.put, "/v1/projects/x/files/b.bin", as: fixture.bob, bytes: Array(repeating: 2, count: 500))
            #expect(bobs.status == .created)
        }
    }
}
