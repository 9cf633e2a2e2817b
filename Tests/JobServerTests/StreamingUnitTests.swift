import Foundation
import NIOCore
@testable import JobServer
import Queue
import TestSupport
import Synchronization
import Testing

/// The pieces of the streams that hold state: the bounded per-connection queue, the shared
/// per-job tail, and the worker's event batcher (against a real SQLite store).
@Suite struct StreamingUnitTests {
    static let job = JobID(rawValue: "job_01aaaaaaaaaaaaaaaaaaaaaaaa")!

    static func events(_ seqs: ClosedRange<Int64>, bytes: Int = 10) -> [StreamMessage] {
        seqs.map { StreamMessage(kind: .event(seq: $0), jobID: job, json: ByteBuffer(repeating: 0x20, count: bytes)) }
    }

    @Test func liveOverflowIsRefusedButCatchUpAndTheEndAreNot() async throws {
        let queue = OutboundQueue(maxMessages: 8, maxBytes: 1000)
        let generation = queue.restart(Self.job)
        // Catch-up gets at most half the queue, so live events keep the other half.
        let room = try await queue.room()
        #expect(room.messages == 4 && room.bytes == 500)
        #expect(queue.push(Self.events(1...4), job: Self.job, generation: generation, live: false))
        #expect(queue.push(Self.events(5...8), job: Self.job, generation: generation, live: true))
        #expect(!queue.push(Self.events(9...9), job: Self.job, generation: generation, live: true), "full: a slow consumer")
        #expect(queue.push(Self.events(9...9), job: Self.job, generation: generation, live: false), "catch-up is never refused")
        let taken = await queue.take()
        #expect(taken?.compactMap(\.seq) == Array(1...9))
        queue.finish(.complete)
        #expect(await queue.take() == nil)
    }

    @Test func aRestartDropsTheJobsQueuedMessagesAndIgnoresTheOldStream() async throws {
        let queue = OutboundQueue(maxMessages: 100, maxBytes: 100_000)
        let old = queue.restart(Self.job)
        #expect(queue.push(Self.events(1...3), job: Self.job, generation: old, live: true))
        #expect(queue.reply(.reply("note")))
        let new = queue.restart(Self.job)
        #expect(queue.push(Self.events(4...4), job: Self.job, generation: old, live: true), "ignored, not refused")
        #expect(queue.push(Self.events(2...2), job: Self.job, generation: new, live: true))
        let taken = try #require(await queue.take())
        #expect(taken.map(\.kind) == [.reply, .event(seq: 2)])
        queue.finish(.failed(.slowConsumer))
        #expect(queue.outcome == .failed(.slowConsumer))
        queue.finish(.complete)
        #expect(queue.outcome == .failed(.slowConsumer), "the first outcome wins")
    }

    @Test func tailSharesOneWindowAndEndsAfterTheLastEvent() async throws {
        try await withTemporaryDirectory { directory in
            let store = try SQLiteJobStore(path: directory + "/jobs.sqlite3")
            let job = try await store.submit(NewJob(userID: UserID(rawValue: "usr_a"), kind: "generate", project: "p", payload: [:])).job
            _ = try await store.claim(owner: "w", lease: .seconds(60))
            _ = try await store.appendEvents(job.id, owner: "w", (1...5).map { NewEvent(type: "t", data: "{\"n\":\($0)}") })
            let hub = JobEventHub(store: store, configuration: StreamingConfiguration(cacheEvents: 3, pageSize: 2))
            let budget = JobEventTail.Budget(messages: 100, bytes: 1 << 20)
            try await hub.withTail(of: job.id) { tail in
                var seen: [Int64] = []
                var position: Int64 = 0
                while position < 5 {
                    guard case .messages(let batch, _) = try await tail.read(after: position, budget: budget) else { break }
                    seen += batch.compactMap(\.seq)
                    position = seen.last ?? position
                }
                #expect(seen == [1, 2, 3, 4, 5])
                // Seq 1 left the three-event window: read from the store.
                guard case .messages(let old, let caughtUp) = try await tail.read(after: 0, budget: budget) else {
                    Issue.record("expected events")
                    return
                }
                #expect(old.first?.seq == 1 && !caughtUp)
                try await store.complete(job.id, owner: "w", with: .succeeded(result: nil, metrics: nil))
                guard case .end(let end) = try await tail.read(after: 5, budget: budget) else {
                    Issue.record("expected the end")
                    return
                }
                #expect(JSONValue.parse(String(buffer: end.json))?["job"]?["status"]?.stringValue == "succeeded")
            }
            #expect(hub.followedJobs == 0)
        }
    }

    @Test func batcherKeepsTheAgentsOrderAndStopsAtTheLogCap() async throws {
        try await withTemporaryDirectory { directory in
            let store = try SQLiteJobStore(path: directory + "/jobs.sqlite3")
            let job = try await store.submit(NewJob(userID: UserID(rawValue: "usr_a"), kind: "generate", project: "p", payload: [:])).job
            _ = try await store.claim(owner: "w", lease: .seconds(60))
            let full = LogFullFlag()
            let batcher = EventBatcher(store: store, jobID: job.id, owner: "w", byteLimit: 2000, maxBatch: 16) { full.set() }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await batcher.run() }
                for n in 1...500 { await batcher.add(NewEvent(type: "t", data: "{\"n\":\(n)}")) }
                await batcher.close()
            }
            let stored = try await store.events(of: job.id, after: 0, limit: 1000)
            #expect(stored.map(\.seq) == Array(1...Int64(stored.count)))
            #expect(stored.map(\.data) == (1...stored.count).map { "{\"n\":\($0)}" }, "the agent's order")
            #expect(stored.reduce(0) { $0 + $1.type.utf8.count + $1.data.utf8.count } <= 2000)
            let logFull = await batcher.logFull
            #expect(stored.count < 500 && full.value && logFull)
        }
    }
}

/// Set once by the batcher's `onLogFull`.
final class LogFullFlag: Sendable {
    private let flag = Mutex(false)
    func set() { flag.withLock { $0 = true } }
    var value: Bool { flag.withLock { $0 } }
}
