import Foundation
import Queue
import Testing
import Sandbox
import TestSupport

/// An acknowledged submission survives `kill -9` of the server at any moment.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct DurabilityTests {
    @Test func everyAcknowledgedSubmissionSurvivesKillingTheServer() async throws {
        try await withScriptedModelServer { model in
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("burst")
                // The burst is the point: lift the service's default per-user limits.
                try await harness.admin(["user", "limits", "burst", "--rate", "none", "--max-queued", "none"])
                try await harness.startServer()
                let acknowledged = Locked<[String]>([])
                let killed = Locked(false)
                // Eight concurrent clients submit as fast as they can; the server is killed
                // mid-burst, after a random number of acknowledgements. Requests in flight fail;
                // every 202 must be on disk.
                let killAfter = Int.random(in: 100...400)
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for client in 0..<8 {
                        group.addTask {
                            for n in 0..<100_000 where !killed.value {
                                guard let reply = try? await harness.request("POST", "/v1/jobs", token: token, json: [
                                    "type": "generate", "project": "p", "prompt": .string("job \(client)-\(n)"),
                                ], timeout: .seconds(5)) else { return }
                                if reply.status == 202, let id = reply.json?["id"]?.stringValue {
                                    acknowledged.withLock { $0.append(id) }
                                }
                            }
                        }
                    }
                    let deadline = ContinuousClock.now + .seconds(30)
                    while acknowledged.value.count < killAfter, ContinuousClock.now < deadline {
                        try await Task.sleep(for: .milliseconds(1))
                    }
                    await harness.killServer()
                    killed.withLock { $0 = true }
                    try await group.waitForAll()
                }
                let ids = acknowledged.value
                #expect(ids.count >= killAfter, "the burst acknowledged only \(ids.count) jobs before the kill")
                // A fresh store handle on the same file sees every acknowledged job.
                let store = try SQLiteJobStore(path: harness.dataDirectory + "/jobs.sqlite3")
                var missing: [String] = []
                for id in ids {
                    guard let jobID = JobID(rawValue: id), try await store.job(jobID, userID: nil) != nil else {
                        missing.append(id)
                        continue
                    }
                }
                #expect(missing.isEmpty, "lost \(missing.count) of \(ids.count) acknowledged jobs")
            }
        }
    }
}
