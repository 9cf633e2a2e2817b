import Foundation
import Queue
import TestSupport
import Testing

/// The SQLite engine's change feed keeps one notification file per live job; a finished job
/// must leave none behind, or the notification directory grows with every job ever run.
@Suite struct SQLiteChangeFilesTests {
    @Test func finishedJobsLeaveNoNotificationFile() async throws {
        try await withTemporaryDirectory { directory in
            let store = try SQLiteJobStore(path: directory + "/store.db", clock: ManualClock())
            let notify = directory + "/notify"
            let job = try await store.submitNew(newJob())
            let claimed = try await store.claimRequired()
            #expect(claimed.id == job.id)
            _ = try await store.appendEvents(job.id, owner: "worker-1", [NewEvent(type: "output", data: "{}")])
            #expect(FileManager.default.fileExists(atPath: notify + "/events-\(job.id)"))

            // A subscriber waiting on the job's events is woken by the completion.
            let generation = store.changes.generation(of: .events(job.id))
            async let woken = store.changes.wait(for: .events(job.id), after: generation, timeout: .seconds(5))
            try await store.complete(job.id, owner: "worker-1", with: .succeeded(result: nil, metrics: nil))
            #expect(await woken)
            #expect(!FileManager.default.fileExists(atPath: notify + "/events-\(job.id)"))

            // Jobs cancelled while queued leave nothing either.
            let queued = try await store.submitNew(newJob())
            _ = try await store.requestCancel(queued.id, userID: nil)
            #expect(!FileManager.default.fileExists(atPath: notify + "/events-\(queued.id)"))
        }
    }
}
