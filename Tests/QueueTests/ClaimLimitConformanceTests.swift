import Foundation
import Queue
import TestSupport
import Testing

/// Limits at claim time and while running: `max_running`, fairness between users, daily
/// budgets and the usage charged by workers.
@Suite("Store conformance: running limits and budgets")
struct ClaimLimitConformanceTests {
    @Test(arguments: StoreEngine.all)
    func maxRunningSkipsACappedUserWithoutBlockingOthers(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            _ = try await store.updateLimits(for: .user(alice)) { $0.maxRunning = .value(2) }
            var mine: [JobRecord] = []
            for _ in 0..<100 { mine.append(try await store.submitNew(newJob())) }
            let first = try await store.claimRequired("w1")
            let second = try await store.claimRequired("w2")
            #expect([first.id, second.id] == [mine[0].id, mine[1].id])
            // Alice is at her cap: her 98 waiting jobs are skipped, not scanned into a claim.
            #expect(try await store.claim(owner: "w3", lease: .seconds(30)) == nil)
            let bobs = try await store.submitNew(newJob(bob))
            #expect(try await store.claimRequired("w3").id == bobs.id)
            #expect(try await store.usage(of: alice).runningJobs == 2)
            try await store.complete(first.id, owner: "w1", with: .succeeded(result: nil, metrics: nil))
            #expect(try await store.claimRequired("w1").id == mine[2].id)
            #expect(try await store.claim(owner: "w4", lease: .seconds(30)) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func aFreeSlotGoesToTheUserWithFewerRunningJobs(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            var mine: [JobRecord] = []
            for _ in 0..<100 { mine.append(try await store.submitNew(newJob())) }
            let running = [try await store.claimRequired("w1"), try await store.claimRequired("w2")]
            clock.advance(by: .seconds(1))
            let bobs = try await store.submitNew(newJob(bob))
            // Plain FIFO would hand out Alice's 98 older jobs first; Bob runs nothing, so he is next.
            try await store.complete(running[0].id, owner: "w1", with: .succeeded(result: nil, metrics: nil))
            #expect(try await store.claimRequired("w1").id == bobs.id)
            #expect(try await store.claimRequired("w3").id == mine[2].id)
            // Priority still comes first.
            let urgent = try await store.submitNew(newJob(priority: 5))
            _ = try await store.submitNew(newJob(bob))
            #expect(try await store.claimRequired("w4").id == urgent.id)
        }
    }

    @Test(arguments: StoreEngine.all)
    func kindCostsCountAgainstMaxRunning(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            _ = try await store.updateLimits(for: .defaults) { $0.maxRunning = .value(2); $0.kindCosts = ["generate": 2] }
            let heavy = try await store.submit(newJob(kind: "generate"), admission: Admission()).outcome.job
            let light = try await store.submit(newJob(kind: "analyze"), admission: Admission()).outcome.job
            #expect(try await store.claimRequired("a").id == heavy.id)
            #expect(try await store.claim(owner: "b", lease: .seconds(30)) == nil, "2 units run: the cap")
            try await store.complete(heavy.id, owner: "a", with: .succeeded(result: nil, metrics: nil))
            #expect(try await store.claimRequired("b").id == light.id)
            #expect(try await store.usage(of: alice).runningCost == 1)
        }
    }

    @Test(arguments: StoreEngine.all)
    func chargesAreExactRunningTotalsPerRun(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob())
            let claimed = try await store.claimRequired("w1")
            #expect(try await store.chargeUsage(job.id, owner: "w1", attemptTotal: MeteredUsage(tokens: 500, costMicroUSD: 10)) == .within)
            // Running totals: repeating or replacing a figure never counts twice.
            _ = try await store.chargeUsage(job.id, owner: "w1", attemptTotal: MeteredUsage(tokens: 500, costMicroUSD: 10))
            _ = try await store.chargeUsage(job.id, owner: "w1", attemptTotal: MeteredUsage(tokens: 1200, costMicroUSD: 30))
            _ = try await store.chargeUsage(job.id, owner: "w1", attemptTotal: MeteredUsage(tokens: 1100, costMicroUSD: 25))
            #expect(try await store.usage(of: alice).today == MeteredUsage(tokens: 1100, costMicroUSD: 25))
            await #expect(throws: StoreError.leaseLost(job.id)) {
                try await store.chargeUsage(job.id, owner: "intruder", attemptTotal: MeteredUsage(tokens: 1))
            }
            // The lease expires; the next attempt's charges add to the day, they do not replace.
            clock.advance(by: .seconds(31))
            #expect(try await store.recoverExpiredLeases() == 1)
            let retried = try await store.claimRequired("w2")
            #expect(retried.id == claimed.id && retried.attempt == 2)
            _ = try await store.chargeUsage(job.id, owner: "w2", attemptTotal: MeteredUsage(tokens: 100, costMicroUSD: 1))
            #expect(try await store.usage(of: alice).today == MeteredUsage(tokens: 1200, costMicroUSD: 26))
            #expect(try await store.usage(of: bob).today == MeteredUsage())
            // A new UTC day starts from zero.
            clock.advance(by: .seconds(86_400))
            #expect(try await store.usage(of: alice).today == MeteredUsage())
        }
    }

    @Test(arguments: StoreEngine.all)
    func aSpentBudgetStopsRunningJobsRefusesQueuedOnesAndNewSubmissions(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            clock.set(Date(timeIntervalSince1970: 1_750_032_000))  // 00:00 UTC
            _ = try await store.updateLimits(for: .user(alice)) { $0.dailyTokens = .value(1000) }
            let running = try await store.submitNew(newJob())
            let waiting = try await store.submitNew(newJob())
            let bobs = try await store.submitNew(newJob(bob))
            _ = try await store.claimRequired("w1")
            #expect(try await store.chargeUsage(running.id, owner: "w1", attemptTotal: MeteredUsage(tokens: 1000)) == .within,
                    "reaching the budget exactly is within it")
            let crossed = try await store.chargeUsage(running.id, owner: "w1", attemptTotal: MeteredUsage(tokens: 1001))
            let resets = Date(timeIntervalSince1970: 1_750_118_400)
            #expect(crossed == .exceeded(BudgetExhaustion(budget: .dailyTokens, limit: 1000, used: 1001, resetsAt: resets)))
            // Bob runs nothing, so his job goes first; the claim after refuses Alice's waiting
            // job instead of starting it.
            #expect(try await store.claimRequired("w2").id == bobs.id)
            #expect(try await store.claim(owner: "w3", lease: .seconds(30)) == nil)
            let refused = try #require(try await store.job(waiting.id, userID: nil))
            #expect(refused.status == .failed)
            #expect(refused.error?.code == .rateLimit)
            #expect(refused.error?.details?["budget"]?.stringValue == "daily_tokens")
            #expect(refused.error?.details?["used"]?.intValue == 1001)
            // New submissions are refused until midnight UTC, then admitted.
            guard case .budget(let spent, _) = try await AdmissionConformanceTests.attempt(store, newJob()) else {
                Issue.record("expected a budget refusal")
                return
            }
            #expect(spent.resetsAt == resets)
            clock.set(resets)
            #expect(try await AdmissionConformanceTests.attempt(store, newJob()) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func dollarBudgetsCountMillionths(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            _ = try await store.updateLimits(for: .defaults) { $0.dailyCostMicroUSD = .value(50_000) }
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w")
            let check = try await store.chargeUsage(job.id, owner: "w", attemptTotal: MeteredUsage(tokens: 10, costMicroUSD: 50_001))
            guard case .exceeded(let spent) = check else {
                Issue.record("expected the dollar budget to be crossed")
                return
            }
            #expect(spent.budget == .dailyCostUSD)
            #expect(spent.details["limit"]?.doubleValue == 0.05)
            #expect(spent.jobError(stopped: true).code == .resourceLimit)
        }
    }

    @Test(arguments: StoreEngine.all)
    func countersFollowEveryTransition(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let jobs = [try await store.submitNew(newJob()), try await store.submitNew(newJob()), try await store.submitNew(newJob())]
            _ = try await store.requestCancel(jobs[0].id, userID: alice)
            let claimed = try await store.claimRequired("w")
            var usage = try await store.usage(of: alice)
            #expect((usage.queuedJobs, usage.runningJobs) == (1, 1))
            clock.advance(by: .seconds(31))
            _ = try await store.recoverExpiredLeases()
            usage = try await store.usage(of: alice)
            #expect((usage.queuedJobs, usage.runningJobs) == (2, 0))
            _ = try await store.claimRequired("w")
            _ = try await store.claimRequired("v")
            try await store.complete(claimed.id, owner: "w", with: .failed(JobError(.agentError, "x"), result: nil, metrics: nil))
            try await store.release(jobs[2].id, owner: "v")
            usage = try await store.usage(of: alice)
            #expect((usage.queuedJobs, usage.queuedCost, usage.runningJobs, usage.runningCost) == (1, 1, 0, 0))
        }
    }
}
