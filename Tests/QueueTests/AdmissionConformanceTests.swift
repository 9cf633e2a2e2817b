import Foundation
import Queue
import TestSupport
import Testing

/// Admission at submission: rate, `max_queued`, the queue cap and how limits resolve.
@Suite("Store conformance: admission")
struct AdmissionConformanceTests {
    static let limited = Admission()

    /// Submits with limits and returns the refusal, or `nil` when the job was stored.
    static func attempt(_ store: any ConformingStore, _ job: NewJob, _ admission: Admission = limited) async throws -> LimitRefusal? {
        do {
            _ = try await store.submit(job, admission: admission)
            return nil
        } catch let refusal as LimitRefusal {
            return refusal
        }
    }

    static func setLimits(_ store: any ConformingStore, _ scope: LimitScope, _ change: @escaping @Sendable (inout LimitOverrides) -> Void) async throws {
        _ = try await store.updateLimits(for: scope, change)
    }

    @Test(arguments: StoreEngine.all)
    func theRateAdmitsTheBurstThenRecoversAtTheRate(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            try await Self.setLimits(store, .user(alice)) { $0.rate = .value(.perMinute(60)); $0.burst = .value(5) }
            var statuses: [RateLimitStatus?] = []
            for _ in 0..<5 {
                let admitted = try await store.submit(newJob(), admission: Self.limited)
                #expect(admitted.outcome.job.status == .queued)
                statuses.append(admitted.rate)
            }
            #expect(statuses.map { $0?.remaining } == [4, 3, 2, 1, 0])
            #expect(statuses.last??.resetSeconds == 5)
            for _ in 0..<3 {
                guard case .rate(let retryAfter, let status) = try await Self.attempt(store, newJob()) else {
                    Issue.record("expected a rate refusal")
                    continue
                }
                #expect(retryAfter == 1)
                #expect(status.remaining == 0)
            }
            // Bob has his own bucket (the unlimited built-in here: no status at all).
            #expect(try await store.submit(newJob(bob), admission: Self.limited).rate == nil)
            clock.advance(by: .milliseconds(999))
            #expect(try await Self.attempt(store, newJob()) != nil)
            clock.advance(by: .milliseconds(1))
            #expect(try await Self.attempt(store, newJob()) == nil, "one unit back after one emission interval")
            #expect(try await Self.attempt(store, newJob()) != nil)
            clock.advance(by: .seconds(3))
            for _ in 0..<3 { #expect(try await Self.attempt(store, newJob()) == nil) }
            #expect(try await Self.attempt(store, newJob()) != nil)
            let stored = try await store.jobs(userID: alice, filter: JobFilter(), after: nil, limit: 100)
            #expect(stored.count == 9, "exactly the admitted jobs were stored")
        }
    }

    @Test(arguments: StoreEngine.all)
    func refusalsAndReplaysSpendNothing(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            try await Self.setLimits(store, .user(alice)) {
                $0.rate = .value(.perMinute(1)); $0.burst = .value(2); $0.maxQueued = .value(1)
            }
            let first = try await store.submit(newJob(key: "k", hash: "h"), admission: Self.limited)
            #expect(first.rate?.remaining == 1)
            // Over max_queued: refused before the rate is asked, so the bucket keeps its unit.
            guard case .tooManyQueued(let limit, let queued, let status) = try await Self.attempt(store, newJob()) else {
                Issue.record("expected max_queued")
                return
            }
            #expect(limit == 1 && queued == 1)
            #expect(status?.remaining == 1)
            // An idempotent replay answers the original even though a new job would be refused.
            let replay = try await store.submit(newJob(key: "k", hash: "h"), admission: Self.limited)
            #expect(replay.outcome == .existing(first.outcome.job))
            #expect(replay.rate == nil)
            _ = try await store.requestCancel(first.outcome.job.id, userID: alice)
            let second = try await store.submit(newJob(), admission: Self.limited)
            #expect(second.rate?.remaining == 0)
        }
    }

    @Test(arguments: StoreEngine.all)
    func maxQueuedCountsCostUnitsAndALoneJobAlwaysFits(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            try await Self.setLimits(store, .defaults) { $0.kindCosts = ["generate": 3]; $0.maxQueued = .value(4) }
            try await Self.setLimits(store, .user(bob)) { $0.maxQueued = .value(2) }
            #expect(try await store.limits(of: alice).cost(of: "generate") == 3)
            #expect(try await store.limits(of: alice).cost(of: "analyze") == 1)
            #expect(try await Self.attempt(store, newJob(kind: "generate")) == nil)
            #expect(try await Self.attempt(store, newJob(kind: "analyze")) == nil)
            #expect(try await Self.attempt(store, newJob(kind: "generate")) == .tooManyQueued(limit: 4, queued: 4, status: nil))
            #expect(try await store.usage(of: alice).queuedCost == 4)
            #expect(try await store.usage(of: alice).queuedJobs == 2)
            // Bob's 2 are below one generate's cost of 3, yet his first generate fits: nothing of his waits.
            #expect(try await Self.attempt(store, newJob(bob, kind: "generate")) == nil)
            #expect(try await Self.attempt(store, newJob(bob, kind: "analyze")) != nil)
            // Without user limits only the queue cap applies.
            #expect(try await Self.attempt(store, newJob(kind: "generate"), Admission(userLimits: false)) == nil)
            // A claimed job leaves the queue and frees its units.
            _ = try await store.claimRequired()
            #expect(try await store.usage(of: alice).queuedCost == 4)
        }
    }

    @Test(arguments: StoreEngine.all)
    func aFullQueueRefusesEveryoneUntilItDrains(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let capped = Admission(userLimits: false, maxQueueDepth: 3)
            for user in [alice, bob, alice] { #expect(try await Self.attempt(store, newJob(user), capped) == nil) }
            let refusal = try await Self.attempt(store, newJob(bob), capped)
            #expect(refusal == .queueFull(limit: 3, status: nil))
            #expect(refusal?.code == .queueFull)
            #expect(refusal?.retryAfterSeconds(now: Date()) == Admission.drainRetryAfterSeconds)
            // Plain submissions (no admission) are not capped; cancelling or claiming drains.
            _ = try await store.submitNew(newJob())
            #expect(try await Self.attempt(store, newJob(bob), capped) != nil)
            _ = try await store.claimRequired()
            _ = try await store.claimRequired()
            #expect(try await Self.attempt(store, newJob(bob), capped) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func limitsResolveBuiltInThenDefaultsThenUser(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            #expect(try await store.limits(of: alice) == UserLimits.unlimited, "a bare store limits nothing")
            try await Self.setLimits(store, .defaults) {
                $0.rate = .value(.perMinute(30)); $0.burst = .value(4); $0.maxRunning = .value(2)
                $0.dailyTokens = .value(10_000); $0.kindCosts = ["generate": 2, "review": 5]
            }
            try await Self.setLimits(store, .user(alice)) {
                $0.rate = .unlimited; $0.maxRunning = .value(7); $0.dailyCostMicroUSD = .value(2_500_000)
                $0.diskQuotaBytes = .value(1 << 20); $0.kindCosts = ["review": 1]
            }
            let mine = try await store.limits(of: alice)
            #expect(mine.rate == nil && mine.burst == 4 && mine.maxRunning == 7 && mine.maxQueued == nil)
            #expect(mine.dailyTokens == 10_000 && mine.dailyCostMicroUSD == 2_500_000 && mine.diskQuotaBytes == 1 << 20)
            #expect(mine.cost(of: "generate") == 2 && mine.cost(of: "review") == 1)
            let bobs = try await store.limits(of: bob)
            #expect(bobs.rate == .perMinute(30) && bobs.maxRunning == 2 && bobs.cost(of: "review") == 5)
            // Overrides read back as stored; inheriting everything again removes them.
            let stored = try await store.limitOverrides(for: .user(alice))
            #expect(stored.rate == .unlimited && stored.burst == .inherit && stored.maxRunning == .value(7))
            _ = try await store.updateLimits(for: .user(alice)) { $0 = LimitOverrides() }
            #expect(try await store.limitOverrides(for: .user(alice)).isEmpty)
            #expect(try await store.limits(of: alice) == bobs)
        }
    }
}
