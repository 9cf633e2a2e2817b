import Foundation
import Queue
import TestSupport
import Testing

@Suite("Store conformance: submitting, ordering, reading")
struct SubmitConformanceTests {
    @Test(arguments: StoreEngine.all)
    func submitThenGetScopedToOwner(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob(priority: 3, maxAttempts: 5))
            #expect(job.status == .queued)
            #expect(job.attempt == 1)
            #expect(job.maxAttempts == 5)
            #expect(job.priority == 3)
            #expect(job.userID == alice)
            #expect(job.createdAt == clock.now())
            #expect(job.notBefore == clock.now())
            #expect(job.lastEventSeq == 0)
            #expect(job.payload == .object(["prompt": .string("hello"), "n": .number(42)]))

            #expect(try await store.job(job.id, userID: nil) == job)
            #expect(try await store.job(job.id, userID: alice) == job)
            #expect(try await store.job(job.id, userID: bob) == nil)
            #expect(try await store.job(JobID.generate(), userID: nil) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func idempotencyKeyReturnsOriginalPerUser(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let original = try await store.submitNew(newJob(key: "k1", hash: "h1"))
            #expect(try await store.submit(newJob(key: "k1", hash: "h1")) == .existing(original))
            await #expect(throws: StoreError.idempotencyConflict(existing: original.id)) {
                try await store.submit(newJob(key: "k1", hash: "other"))
            }
            // Keys are per user.
            let bobs = try await store.submitNew(newJob(bob, key: "k1", hash: "h1"))
            #expect(bobs.id != original.id)
            // Without a key, every submission is new.
            let first = try await store.submitNew(newJob())
            let second = try await store.submitNew(newJob())
            #expect(first.id != second.id)
        }
    }

    @Test(arguments: StoreEngine.all)
    func claimsByPriorityThenFIFO(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let lowA = try await store.submitNew(newJob(priority: 0))
            clock.advance(by: .milliseconds(1))
            let highA = try await store.submitNew(newJob(priority: 5))
            // Same instant: FIFO must not depend on the clock.
            let highB = try await store.submitNew(newJob(priority: 5))
            let lowB = try await store.submitNew(newJob(priority: 0))
            let urgent = try await store.submitNew(newJob(priority: 9))
            let expected = [urgent.id, highA.id, highB.id, lowA.id, lowB.id]
            var claimed: [JobID] = []
            while let job = try await store.claim(owner: "w", lease: .seconds(30)) {
                claimed.append(job.id)
            }
            #expect(claimed == expected)
        }
    }

    @Test(arguments: StoreEngine.all)
    func notBeforeDelaysClaim(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let delayed = try await store.submitNew(newJob(notBefore: clock.now().adding(.seconds(10))))
            #expect(try await store.claim(owner: "w", lease: .seconds(30)) == nil)
            #expect(try await store.queuePosition(of: delayed.id) == 0)
            clock.advance(by: .seconds(9))
            #expect(try await store.claim(owner: "w", lease: .seconds(30)) == nil)
            clock.advance(by: .seconds(1))
            #expect(try await store.claimRequired("w").id == delayed.id)
        }
    }

    @Test(arguments: StoreEngine.all)
    func queuePositionFollowsClaimOrder(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let first = try await store.submitNew(newJob(priority: 0))
            let second = try await store.submitNew(newJob(priority: 0))
            let urgent = try await store.submitNew(newJob(priority: 1))
            #expect(try await store.queuePosition(of: urgent.id) == 0)
            #expect(try await store.queuePosition(of: first.id) == 1)
            #expect(try await store.queuePosition(of: second.id) == 2)
            let claimed = try await store.claimRequired()
            #expect(claimed.id == urgent.id)
            #expect(try await store.queuePosition(of: urgent.id) == nil)
            #expect(try await store.queuePosition(of: second.id) == 1)
            #expect(try await store.queuePosition(of: JobID.generate()) == nil)
        }
    }

    @Test(arguments: StoreEngine.all)
    func statsCountEachState(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let empty = try await store.stats()
            #expect(empty.counts.values.allSatisfy { $0 == 0 })
            #expect(empty.oldestQueuedAt == nil)
            let oldest = try await store.submitNew(newJob())
            clock.advance(by: .seconds(1))
            for _ in 0..<4 { _ = try await store.submitNew(newJob()) }
            let running = try await store.claimRequired("a")
            let done = try await store.claimRequired("b")
            try await store.complete(done.id, owner: "b", with: .succeeded(result: nil, metrics: nil))
            let queuedOne = try #require(try await store.jobs(userID: alice, filter: JobFilter(status: .queued), after: nil, limit: 1).first)
            _ = try await store.requestCancel(queuedOne.id, userID: alice)
            let stats = try await store.stats()
            #expect(stats.counts[.queued] == 2)
            #expect(stats.counts[.running] == 1)
            #expect(stats.counts[.succeeded] == 1)
            #expect(stats.counts[.cancelled] == 1)
            #expect(stats.counts[.failed] == 0)
            #expect(running.id == oldest.id)
            #expect(stats.oldestQueuedAt == clock.now())
            try await store.ping()
        }
    }

    @Test(arguments: StoreEngine.all)
    func listsNewestFirstWithFiltersAndCursor(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            var mine: [JobRecord] = []
            for index in 0..<7 {
                clock.advance(by: .milliseconds(5))
                mine.append(try await store.submitNew(newJob(
                    kind: index.isMultiple(of: 2) ? "agent" : "shell", project: index < 4 ? "p1" : "p2")))
            }
            _ = try await store.submitNew(newJob(bob))
            let newestFirst = mine.reversed().map(\.id)

            var pages: [[JobID]] = []
            var cursor: JobID?
            repeat {
                let page = try await store.jobs(userID: alice, filter: JobFilter(), after: cursor, limit: 3).map(\.id)
                pages.append(page)
                cursor = page.count == 3 ? page.last : nil
            } while cursor != nil
            #expect(pages.map(\.count) == [3, 3, 1])
            #expect(pages.flatMap { $0 } == newestFirst)

            let agents = try await store.jobs(userID: alice, filter: JobFilter(kind: "agent"), after: nil, limit: 100)
            #expect(agents.map(\.id) == newestFirst.enumerated().filter { (6 - $0.offset).isMultiple(of: 2) }.map(\.element))
            let p2Shell = try await store.jobs(userID: alice, filter: JobFilter(kind: "shell", project: "p2"), after: nil, limit: 100)
            #expect(p2Shell.map(\.id) == [mine[5].id])

            let claimed = try await store.claimRequired()
            let running = try await store.jobs(userID: alice, filter: JobFilter(status: .running), after: nil, limit: 100)
            #expect(running.map(\.id) == [claimed.id])
            #expect(try await store.jobs(userID: bob, filter: JobFilter(), after: nil, limit: 100).count == 1)
            #expect(try await store.jobs(userID: alice, filter: JobFilter(), after: nil, limit: 0).isEmpty)
        }
    }
}
