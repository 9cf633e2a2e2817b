import Foundation
import Queue
import TestSupport
import Testing

@Suite("Store conformance: change feed")
struct ChangeFeedConformanceTests {
    @Test(arguments: StoreEngine.all)
    func waitStartedBeforeSubmitWakesPromptly(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let feed = store.changes
            let generation = feed.generation(of: .queue)
            async let woken = feed.wait(for: .queue, after: generation, timeout: .seconds(10))
            try await Task.sleep(for: .milliseconds(20))
            _ = try await store.submitNew(newJob())
            // `true` means the commit's notification woke it, not the timeout (how fast is a
            // benchmark's business, not a test's).
            #expect(await woken)
            #expect(feed.generation(of: .queue) > generation)
        }
    }

    @Test(arguments: StoreEngine.all)
    func staleGenerationReturnsImmediately(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let feed = store.changes
            let generation = feed.generation(of: .queue)
            _ = try await store.submitNew(newJob())
            // The change may still be in flight to this process; wait for it to land once.
            #expect(await feed.wait(for: .queue, after: generation, timeout: .seconds(10)))
            let start = ContinuousClock.now
            #expect(await feed.wait(for: .queue, after: generation, timeout: .seconds(10)))
            // Far below the 10 s timeout: it did not wait (a loose bound, robust to a loaded CI).
            #expect(ContinuousClock.now - start < .seconds(5))
        }
    }

    @Test(arguments: StoreEngine.all)
    func timeoutReturnsFalse(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let feed = store.changes
            let start = ContinuousClock.now
            #expect(await feed.wait(for: .cancel, after: feed.generation(of: .cancel), timeout: .milliseconds(100)) == false)
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(100))
            #expect(elapsed < .seconds(5))
        }
    }

    @Test(arguments: StoreEngine.all)
    func cancellingTheWaiterEndsTheWait(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let feed = store.changes
            let generation = feed.generation(of: .queue)
            let waiter = Task { await feed.wait(for: .queue, after: generation, timeout: .seconds(30)) }
            try await Task.sleep(for: .milliseconds(20))
            let start = ContinuousClock.now
            waiter.cancel()
            #expect(await waiter.value == false)
            // Far below the 30 s timeout: cancellation ended it.
            #expect(ContinuousClock.now - start < .seconds(15))
        }
    }

    @Test(arguments: StoreEngine.all)
    func eventsAndCancellationWakeTheirChannels(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let feed = store.changes
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            let events = feed.generation(of: .events(job.id))
            let cancel = feed.generation(of: .cancel)
            let otherJob = feed.generation(of: .events(JobID.generate()))
            _ = try await store.appendEvents(job.id, owner: "w1", [NewEvent(type: "output", data: "{}")])
            #expect(await feed.wait(for: .events(job.id), after: events, timeout: .seconds(10)))
            _ = try await store.requestCancel(job.id, userID: nil)
            #expect(await feed.wait(for: .cancel, after: cancel, timeout: .seconds(10)))
            #expect(await feed.wait(for: .events(JobID.generate()), after: otherJob, timeout: .milliseconds(50)) == false)
        }
    }

    @Test(arguments: StoreEngine.all)
    func serviceRunsTheFeedUntilCancelled(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let service = Task { try await store.run() }
            try await Task.sleep(for: .milliseconds(50))
            let generation = store.changes.generation(of: .queue)
            _ = try await store.submitNew(newJob())
            #expect(await store.changes.wait(for: .queue, after: generation, timeout: .seconds(10)))
            service.cancel()
            try await service.value
        }
    }

    /// Many notifications and submissions in a row: each wakes the waiter that was started
    /// before it, none is lost to a timeout.
    @Test(arguments: StoreEngine.all)
    func everyNotificationWakesItsWaiter(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let feed = store.changes
            var samples: [Duration] = []
            for _ in 0..<200 {
                let generation = feed.generation(of: .queue)
                async let woke: ContinuousClock.Instant? = {
                    await feed.wait(for: .queue, after: generation, timeout: .seconds(5)) ? ContinuousClock.now : nil
                }()
                try await Task.sleep(for: .microseconds(500))
                let sent = ContinuousClock.now
                feed.notify(.queue)
                let wokeAt = try #require(await woke)
                samples.append(wokeAt - sent)
            }
            // Submit (including its commit) → the waiting task resumes.
            var submits: [Duration] = []
            for _ in 0..<50 {
                let generation = feed.generation(of: .queue)
                async let woke: ContinuousClock.Instant? = {
                    await feed.wait(for: .queue, after: generation, timeout: .seconds(5)) ? ContinuousClock.now : nil
                }()
                try await Task.sleep(for: .microseconds(500))
                let sent = ContinuousClock.now
                _ = try await store.submitNew(newJob())
                let wokeAt = try #require(await woke)
                submits.append(wokeAt - sent)
            }
            // Every notification and every submission woke its waiter (none timed out). How fast
            // is measured by the benchmarks, not asserted here.
            #expect(samples.count == 200 && submits.count == 50)
        }
    }
}
