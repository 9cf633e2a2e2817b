import Foundation
import Queue
import TestSupport
import Testing

@Suite("Store conformance: leases, completion, cancellation")
struct LeaseConformanceTests {
    @Test(arguments: StoreEngine.all)
    func claimHeartbeatComplete(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let submitted = try await store.submitNew(newJob())
            clock.advance(by: .seconds(2))
            let claimed = try await store.claimRequired("w1", lease: .seconds(30))
            #expect(claimed.id == submitted.id)
            #expect(claimed.status == .running)
            #expect(claimed.leaseOwner == "w1")
            #expect(claimed.startedAt == clock.now())
            #expect(claimed.leaseExpiresAt == clock.now().adding(.seconds(30)))
            #expect(try await store.job(claimed.id, userID: nil) == claimed)
            #expect(try await store.claim(owner: "w2", lease: .seconds(30)) == nil)

            clock.advance(by: .seconds(20))
            let beat = try await store.heartbeat(claimed.id, owner: "w1", lease: .seconds(30))
            #expect(beat == .renewed(expiresAt: clock.now().adding(.seconds(30)), cancelRequested: false))
            #expect(try await store.heartbeat(claimed.id, owner: "w2", lease: .seconds(30)) == .lost)

            clock.advance(by: .seconds(20))  // past the first lease, within the renewed one
            let done = try await store.complete(claimed.id, owner: "w1", with: .succeeded(
                result: .object(["answer": .string("ok")]), metrics: .object(["tokens": .number(7)])))
            #expect(done.status == .succeeded)
            #expect(done.finishedAt == clock.now())
            #expect(done.leaseOwner == nil)
            #expect(done.leaseExpiresAt == nil)
            #expect(done.result == .object(["answer": .string("ok")]))
            #expect(done.metrics == .object(["tokens": .number(7)]))
            #expect(done.error == nil)
            #expect(try await store.job(claimed.id, userID: alice) == done)
        }
    }

    @Test(arguments: StoreEngine.all)
    func terminalJobsNeverChange(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            let failed = try await store.complete(job.id, owner: "w1", with: .failed(
                JobError(.agentError, "boom"), result: nil, metrics: nil))
            #expect(failed.status == .failed)
            #expect(failed.error == JobError(.agentError, "boom"))
            clock.advance(by: .seconds(1))
            await #expect(throws: StoreError.leaseLost(job.id)) {
                try await store.complete(job.id, owner: "w1", with: .succeeded(result: nil, metrics: nil))
            }
            await #expect(throws: StoreError.leaseLost(job.id)) {
                try await store.release(job.id, owner: "w1")
            }
            #expect(try await store.heartbeat(job.id, owner: "w1", lease: .seconds(30)) == .lost)
            #expect(try await store.requestCancel(job.id, userID: alice) == failed)
            #expect(try await store.job(job.id, userID: nil) == failed)
        }
    }

    @Test(arguments: StoreEngine.all)
    func completionByAnotherWorkerIsRefused(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            await #expect(throws: StoreError.leaseLost(job.id)) {
                try await store.complete(job.id, owner: "w2", with: .succeeded(result: nil, metrics: nil))
            }
            #expect(try await store.job(job.id, userID: nil)?.status == .running)
        }
    }

    @Test(arguments: StoreEngine.all)
    func expiredLeaseRequeuesThenFailsWithWorkerLost(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob(maxAttempts: 2))
            _ = try await store.claimRequired("w1", lease: .seconds(30))
            clock.advance(by: .seconds(30))
            // Expired but not yet recovered: the old owner has lost it all the same.
            #expect(try await store.heartbeat(job.id, owner: "w1", lease: .seconds(30)) == .lost)

            // The next claim recovers the lease first and hands the job out again.
            let second = try await store.claimRequired("w2", lease: .seconds(30))
            #expect(second.id == job.id)
            #expect(second.attempt == 2)
            #expect(second.leaseOwner == "w2")
            #expect(try await store.heartbeat(job.id, owner: "w1", lease: .seconds(30)) == .lost)
            await #expect(throws: StoreError.leaseLost(job.id)) {
                try await store.complete(job.id, owner: "w1", with: .succeeded(result: nil, metrics: nil))
            }

            clock.advance(by: .seconds(31))
            #expect(try await store.recoverExpiredLeases() == 1)
            let lost = try #require(try await store.job(job.id, userID: nil))
            #expect(lost.status == .failed)
            #expect(lost.error?.code == .workerLost)
            #expect(lost.finishedAt == clock.now())
            #expect(lost.attempt == 2)
            #expect(try await store.recoverExpiredLeases() == 0)
            #expect(try await store.claim(owner: "w3", lease: .seconds(30)) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func recoverExpiredLeasesRequeuesWithNextAttempt(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob(maxAttempts: 3))
            _ = try await store.claimRequired("w1", lease: .seconds(10))
            clock.advance(by: .seconds(5))
            #expect(try await store.recoverExpiredLeases() == 0)
            clock.advance(by: .seconds(5))
            #expect(try await store.recoverExpiredLeases() == 1)
            let requeued = try #require(try await store.job(job.id, userID: nil))
            #expect(requeued.status == .queued)
            #expect(requeued.attempt == 2)
            #expect(requeued.leaseOwner == nil)
            #expect(try await store.queuePosition(of: job.id) == 0)
        }
    }

    @Test(arguments: StoreEngine.all)
    func releaseKeepsTheAttempt(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            try await store.release(job.id, owner: "w1")
            let released = try #require(try await store.job(job.id, userID: nil))
            #expect(released.status == .queued)
            #expect(released.attempt == 1)
            #expect(released.leaseOwner == nil)
            let again = try await store.claimRequired("w2")
            #expect(again.id == job.id)
            #expect(again.attempt == 1)
            await #expect(throws: StoreError.leaseLost(job.id)) { try await store.release(job.id, owner: "w1") }
        }
    }

    @Test(arguments: StoreEngine.all)
    func retryBacksOffThenFailsWhenAttemptsAreUsedUp(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob(maxAttempts: 2))
            _ = try await store.claimRequired("w1")
            let retried = try await store.complete(job.id, owner: "w1", with: .retry(
                JobError(.apiError, "upstream 529"), after: .seconds(60), metrics: nil))
            #expect(retried.status == .queued)
            #expect(retried.attempt == 2)
            #expect(retried.notBefore == clock.now().adding(.seconds(60)))
            #expect(retried.error?.code == .apiError)
            #expect(try await store.claim(owner: "w2", lease: .seconds(30)) == nil)

            clock.advance(by: .seconds(60))
            let second = try await store.claimRequired("w2")
            #expect(second.id == job.id)
            #expect(second.attempt == 2)
            let final = try await store.complete(job.id, owner: "w2", with: .retry(
                JobError(.apiError, "still 529"), after: .seconds(60), metrics: nil))
            #expect(final.status == .failed)
            #expect(final.error == JobError(.apiError, "still 529"))
            #expect(final.finishedAt == clock.now())
        }
    }

    @Test(arguments: StoreEngine.all)
    func cancellingAQueuedJobEndsItAtOnce(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob())
            #expect(try await store.requestCancel(job.id, userID: bob) == nil)
            #expect(try await store.requestCancel(JobID.generate(), userID: nil) == nil)
            let cancelled = try #require(try await store.requestCancel(job.id, userID: alice))
            #expect(cancelled.status == .cancelled)
            #expect(cancelled.error?.code == .cancelled)
            #expect(cancelled.finishedAt == clock.now())
            #expect(try await store.job(job.id, userID: nil) == cancelled)
            #expect(try await store.claim(owner: "w", lease: .seconds(30)) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func cancellingARunningJobFlagsItForTheWorker(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            let flagged = try #require(try await store.requestCancel(job.id, userID: nil))
            #expect(flagged.status == .running)
            #expect(flagged.cancelRequested)
            let beat = try await store.heartbeat(job.id, owner: "w1", lease: .seconds(30))
            guard case .renewed(_, let cancelRequested) = beat else {
                Issue.record("expected a renewed lease, got \(beat)")
                return
            }
            #expect(cancelRequested)
            let ended = try await store.complete(job.id, owner: "w1", with: .cancelled(result: nil, metrics: nil))
            #expect(ended.status == .cancelled)
            #expect(ended.error?.code == .cancelled)
        }
    }
}
