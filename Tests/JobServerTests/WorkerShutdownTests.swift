import Foundation
import Queue
import Testing
import TestSupport

/// SIGTERM to a worker: stop claiming, let running jobs finish within the grace period, then
/// release the leases of those still running.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct WorkerShutdownTests {
    typealias E2E = EndToEndJobTests

    @Test func runningJobFinishesWithinGraceAndWorkerStopsClaiming() async throws {
        try await withScriptedModelServer { model in
            model.register([ModelTurn.text("finished").delay(.seconds(2))], as: "slow")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("u")
                try await harness.startServer()
                let worker = try harness.startWorker(concurrency: 1, graceSeconds: 20)
                let id = try await E2E.submit(harness, token: token, ["type": "generate", "project": "p", "prompt": "x \(ModelScript.marker("slow"))"])
                try await harness.waitForStatus(id, "running", token: token)
                kill(worker.processIdentifier, SIGTERM)
                // Submitted after SIGTERM: must not be claimed by the stopping worker.
                let later = try await E2E.submit(harness, token: token, ["type": "generate", "project": "p", "prompt": "y"])
                await ServiceHarness.waitForExit(worker)
                let job = try await harness.waitForJob(id, token: token, timeout: .seconds(5))
                #expect(job["status"]?.stringValue == "succeeded", "\(job)")
                let pending = try await harness.request("GET", "/v1/jobs/\(later)", token: token).json
                #expect(pending?["status"]?.stringValue == "queued")
            }
        }
    }

    @Test func jobStillRunningAfterGraceIsReleasedWithoutUsingAnAttempt() async throws {
        try await withScriptedModelServer { model in
            model.register([.hang], as: "hang")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("u")
                try await harness.startServer()
                let worker = try harness.startWorker(concurrency: 1, graceSeconds: 1)
                let id = try await E2E.submit(harness, token: token, ["type": "generate", "project": "p", "prompt": "x \(ModelScript.marker("hang"))"])
                try await harness.waitForStatus(id, "running", token: token)
                let start = ContinuousClock.now
                kill(worker.processIdentifier, SIGTERM)
                await ServiceHarness.waitForExit(worker)
                #expect(ContinuousClock.now - start < .seconds(5))
                let job = try #require(try await harness.request("GET", "/v1/jobs/\(id)", token: token).json)
                #expect(job["status"]?.stringValue == "queued", "\(job)")
                #expect(job["attempt"]?.intValue == 1)
                #expect(EndToEndFailureTests.processes(withCwdUnder: harness.dataDirectory + "/runs").isEmpty)
            }
        }
    }
}
