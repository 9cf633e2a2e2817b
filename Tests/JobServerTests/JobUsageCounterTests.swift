import Foundation
import Logging
import Queue
import TestSupport
import Testing
@testable import JobServer

/// What a run charges to its user's day: the CLI's own figures, but never less than the model
/// gateway counted. The CLI's figures are the agent's own account from inside the sandbox; the
/// gateway counts outside it. A real SQLite store holds the charges.
@Suite struct JobUsageCounterTests {
    static let model = "claude-sonnet-4-5"

    /// A running job of a fresh user and a counter for it; `body` gets both and the store.
    func withCounter(_ body: (SQLiteJobStore, JobRecord, JobUsageCounter) async throws -> Void) async throws {
        try await withTemporaryDirectory { directory in
            let store = try SQLiteJobStore(path: directory + "/store.db")
            let user = try await store.createUser(name: "alice")
            _ = try await store.submit(NewJob(userID: user.id, kind: "generate", project: "p", payload: ["prompt": "x"]))
            let job = try #require(try await store.claim(owner: "worker-1", lease: .seconds(30)))
            let counter = JobUsageCounter(store: store, jobID: job.id, owner: "worker-1", logger: Logger(label: "test")) { _ in }
            try await body(store, job, counter)
        }
    }

    static func today(_ store: SQLiteJobStore, _ job: JobRecord) async throws -> MeteredUsage {
        try await store.usage(of: job.userID).today
    }

    static func gateway(_ tokens: ModelTokens) -> GatewayUsage {
        var usage = GatewayUsage()
        usage.tokensByModel[model] = tokens
        return usage
    }

    static func result(input: Int, output: Int, costUSD: Double) -> JSONValue {
        ["type": "result", "usage": ["input_tokens": .number(Double(input)), "output_tokens": .number(Double(output))],
         "total_cost_usd": .number(costUSD)]
    }

    @Test func aLowResultDoesNotLowerWhatTheGatewayCounted() async throws {
        try await withCounter { store, job, counter in
            let counted = ModelTokens(input: 10_000, output: 2_000)
            await counter.record(response: "msg_1", model: Self.model, tokens: ModelTokens(input: 10_000, output: 1))
            await counter.observe(gateway: Self.gateway(counted))
            let floor = MeteredUsage(tokens: counted.budgeted,
                                     costMicroUSD: MeteredUsage.micros(usd: ModelPrices.estimate(counted, model: Self.model)))
            let charged1 = try await Self.today(store, job)
            #expect(charged1 == floor)
            // The agent's result claims almost nothing.
            await counter.settle(result: Self.result(input: 1, output: 1, costUSD: 0.000001))
            let charged2 = try await Self.today(store, job)
            #expect(charged2 == floor)
        }
    }

    @Test func theCLIsExactResultStandsWhereItIsNotBelowTheGateway() async throws {
        try await withCounter { store, job, counter in
            await counter.observe(gateway: Self.gateway(ModelTokens(input: 100, output: 20)))
            // The CLI's result is exact and covers everything the gateway saw (and its price).
            await counter.settle(result: Self.result(input: 100, output: 25, costUSD: 1.5))
            let charged3 = try await Self.today(store, job)
            #expect(charged3 == MeteredUsage(tokens: 125, costMicroUSD: 1_500_000))
            // Reports after the settlement change nothing.
            await counter.observe(gateway: Self.gateway(ModelTokens(input: 9_999_999)))
            let charged4 = try await Self.today(store, job)
            #expect(charged4 == MeteredUsage(tokens: 125, costMicroUSD: 1_500_000))
        }
    }

    @Test func theGatewayCountsAModelCallTheCLINeverReported() async throws {
        try await withCounter { store, job, counter in
            // No `assistant` line and no result (the agent was killed mid-reply): the gateway's
            // count is all there is, and it is charged.
            await counter.observe(gateway: Self.gateway(ModelTokens(input: 500, output: 70, cacheCreation: 30)))
            await counter.settle(result: nil)
            let charged5 = try await Self.today(store, job).tokens
            #expect(charged5 == 600)
        }
    }
}
