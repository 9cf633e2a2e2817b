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
            let start = ContinuousClock.now
            _ = try await store.submitNew(newJob())
            #expect(await woken)
            #expect(ContinuousClock.now - start < .seconds(2))
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
            #expect(ContinuousClock.now - start < .milliseconds(100))
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
            #expect(ContinuousClock.now - start < .seconds(2))
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

    /// Not a pass/fail bound beyond sanity: prints notify → wake latency for the report.
    @Test(arguments: StoreEngine.all)
    func measuresWakeLatency(engine: StoreEngine) async throws {
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
            let notify = Self.summary(samples)
            let submit = Self.summary(submits)
            print("change feed [\(engine.name)] notify→wake: \(notify.text); submit→wake: \(submit.text)")
            #expect(notify.median < .milliseconds(50))
        }
    }

    private static func summary(_ samples: [Duration]) -> (median: Duration, text: String) {
        let sorted = samples.sorted()
        func micros(_ duration: Duration) -> String {
            let (seconds, attoseconds) = duration.components
            return "\(seconds * 1_000_000 + attoseconds / 1_000_000_000_000) µs"
        }
        let median = sorted[sorted.count / 2]
        let p90 = sorted[sorted.count * 9 / 10]
        return (median, "median \(micros(median)), p90 \(micros(p90)), max \(micros(sorted.last ?? .zero))")
    }
}
