import Foundation
import Queue
import Testing
import TestSupport

/// Failure paths end to end, each with its documented error code.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct EndToEndFailureTests {
    typealias E2E = EndToEndJobTests

    /// Runs one job with one script against a fresh service and returns the finished job.
    static func runJob(_ script: ModelScript, options: JSONValue = .object([:]), type: String = "generate") async throws -> JSONValue {
        try await withScriptedModelServer { model in
            model.register(script, as: "s")
            return try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("u")
                try await harness.startServer()
                try harness.startWorker()
                let id = try await E2E.submit(harness, token: token, [
                    "type": .string(type), "project": "p", "prompt": .string("go \(ModelScript.marker("s"))"), "options": options,
                ])
                return try await harness.waitForJob(id, token: token)
            }
        }
    }

    @Test func wallClockTimeoutIsE001() async throws {
        let job = try await Self.runJob([.hang], options: ["timeout_s": 2])
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "E001")
        #expect(job["error"]?["details"]?["limit"]?.stringValue == "wall_clock")
    }

    @Test func idleTimeoutIsE001() async throws {
        let job = try await Self.runJob([ModelTurn.text("late").delay(.seconds(20))], options: ["idle_timeout_s": 2, "timeout_s": 60])
        #expect(job["error"]?["code"]?.stringValue == "E001", "\(job)")
        #expect(job["error"]?["details"]?["limit"]?.stringValue == "idle")
    }

    @Test func agentExitWithoutResultIsE009() async throws {
        // The agent's own Bash tool kills the CLI process: it dies without a result line.
        let job = try await Self.runJob([.toolUse([.bash("kill -9 $PPID")])])
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "E009", "\(job)")
        #expect(job["error"]?["message"]?.stringValue?.contains("without a result") == true)
    }

    @Test func maxTurnsIsE009() async throws {
        let job = try await Self.runJob([
            .toolUse([.bash("echo 1")]), .toolUse([.bash("echo 2")]), .toolUse([.bash("echo 3")]), .text("never"),
        ], options: ["max_turns": 1])
        #expect(job["error"]?["code"]?.stringValue == "E009", "\(job)")
        #expect(job["error"]?["details"]?["subtype"]?.stringValue == "error_max_turns")
    }

    @Test(arguments: [(500, "api_error", "E005"), (429, "rate_limit_error", "E002"), (401, "authentication_error", "E005")])
    func modelAPIFailures(status: Int, type: String, code: String) async throws {
        let job = try await Self.runJob([.error(status: status, type: type)])
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == code, "\(job)")
        #expect(job["error"]?["details"]?["upstream_status"]?.intValue == status)
    }

    @Test func workerWithoutAnAPIKeyFailsJobsWithE005() async throws {
        try await withScriptedModelServer { model in
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("u")
                try await harness.startServer()
                try harness.startWorker(apiKey: nil)
                let id = try await E2E.submit(harness, token: token, ["type": "generate", "project": "p", "prompt": "x"])
                let job = try await harness.waitForJob(id, token: token)
                #expect(job["error"]?["code"]?.stringValue == "E005", "\(job)")
                #expect(job["error"]?["message"]?.stringValue?.contains("ANTHROPIC_API_KEY") == true)
                #expect(model.requests.isEmpty, "the CLI never reached the model")
            }
        }
    }

    @Test func cancelWhileQueuedAndWhileRunning() async throws {
        try await withScriptedModelServer { model in
            model.register([.hang], as: "hang")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("u")
                try await harness.startServer()
                // No worker yet: the job stays queued and is cancelled at once.
                let queued = try await E2E.submit(harness, token: token, ["type": "generate", "project": "p", "prompt": "x"])
                let cancelled = try await harness.request("POST", "/v1/jobs/\(queued)/cancel", token: token)
                #expect(cancelled.status == 200)
                #expect(cancelled.json?["status"]?.stringValue == "cancelled")
                #expect(cancelled.json?["error"]?["code"]?.stringValue == "E007")

                try harness.startWorker()
                let running = try await E2E.submit(harness, token: token, [
                    "type": "generate", "project": "p", "prompt": "x \(ModelScript.marker("hang"))",
                ])
                try await harness.waitForStatus(running, "running", token: token)
                try await Task.sleep(for: .milliseconds(500))
                let start = ContinuousClock.now
                let accepted = try await harness.request("POST", "/v1/jobs/\(running)/cancel", token: token)
                #expect(accepted.status == 202)
                let job = try await harness.waitForJob(running, token: token, timeout: .seconds(10))
                #expect(ContinuousClock.now - start < .seconds(2), "cancel took \(ContinuousClock.now - start)")
                #expect(job["status"]?.stringValue == "cancelled")
                #expect(job["error"]?["code"]?.stringValue == "E007")
                // Nothing of the job's run is left: no process has its run directory as cwd.
                #expect(Self.processes(withCwdUnder: harness.dataDirectory + "/runs").isEmpty)
            }
        }
    }

    @Test func workerKilledMidJobIsPickedUpByAnotherAndFinishesOnce() async throws {
        try await withScriptedModelServer { model in
            model.register([
                .toolUse([.write(path: "{{cwd}}/once.txt", content: "x\n")]),
                ModelTurn.text("finished").delay(.seconds(3)),
            ], as: "slow")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("u")
                try await harness.startServer()
                let first = try harness.startWorker(leaseSeconds: 2, heartbeatSeconds: 0.5)
                let id = try await E2E.submit(harness, token: token, [
                    "type": "generate", "project": "p", "prompt": "x \(ModelScript.marker("slow"))",
                ])
                try await harness.waitForStatus(id, "running", token: token)
                try await Task.sleep(for: .milliseconds(700))
                kill(first.processIdentifier, SIGKILL)
                await ServiceHarness.waitForExit(first)
                // The dead worker's agent dies with it (parent-death signal).
                try await Task.sleep(for: .milliseconds(500))
                #expect(Self.processes(withCwdUnder: harness.dataDirectory + "/runs").isEmpty)

                try harness.startWorker(leaseSeconds: 2, heartbeatSeconds: 0.5)
                let job = try await harness.waitForJob(id, token: token, timeout: .seconds(60))
                #expect(job["status"]?.stringValue == "succeeded", "\(job)")
                #expect(job["attempt"]?.intValue == 2)
                #expect(job["result"]?["files"]?.arrayValue?.count == 1)
                let events = try await harness.request("GET", "/v1/jobs/\(id)/events?limit=1000", token: token).json
                let results = events?["events"]?.arrayValue?.filter { $0["type"]?.stringValue == "result" } ?? []
                #expect(results.count == 1, "one result event: the first attempt never finished")
            }
        }
    }

    /// Pids of live processes whose working directory is under `directory`.
    static func processes(withCwdUnder directory: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { pid in
            guard let cwd = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/cwd") else { return false }
            return cwd.hasPrefix(directory)
        }
    }
}
