import Foundation
import Queue
import TestSupport

/// `jobserver-bench sandbox-job --jobs N`: a whole scripted Claude job (the real CLI writes a
/// file, runs a command, answers) through a real server and worker, once with the agent in the
/// sandbox and once with `--unsafe-direct-agent`, alternating so both see the same machine.
/// Both workers use the model gateway; the difference is the sandbox alone.
///
/// Figures per variant: the agent's run (`metrics.duration_ms`: set-up, the CLI's whole run,
/// teardown) and the job's time in the service (`finished_at - started_at`: snapshot, gateway,
/// agent, change set, apply). Prints medians and the ratio sandboxed / unsandboxed.
func runSandboxJob(jobs: Int) async throws {
    try await withScriptedModelServer { model in
        let script: ModelScript = [
            ModelTurn.toolUse([.write(path: "{{cwd}}/hello.py", content: "print('hello')\n")]).usage(input: 1000, output: 50),
            ModelTurn.toolUse([.bash("python3 hello.py > out.txt && cat out.txt")]).usage(input: 1100, output: 30),
            ModelTurn.text("done").usage(input: 1200, output: 5),
        ]
        model.register(script, as: "bench")
        try await withServiceHarness(model: model) { sandboxed in
            try await withServiceHarness(model: model) { direct in
                var samples: [Bool: [(agent: Double, service: Double)]] = [true: [], false: []]
                var tokens: [Bool: String] = [:]
                for (harness, isSandboxed) in [(sandboxed, true), (direct, false)] {
                    tokens[isSandboxed] = try await harness.createUser("bench")
                    try await harness.startServer()
                    try harness.startWorker(concurrency: 1, sandboxed: isSandboxed)
                }
                // One warm-up job each (page cache, the CLI's first start), then the measured ones.
                for round in 0...jobs {
                    for (harness, isSandboxed) in [(sandboxed, true), (direct, false)] {
                        let token = tokens[isSandboxed]!
                        let reply = try await harness.request("POST", "/v1/jobs", token: token, json: [
                            "type": "generate", "project": "p\(round)", "prompt": "bench \(ModelScript.marker("bench"))",
                        ])
                        guard let id = reply.json?["id"]?.stringValue else { throw BenchError("submit: \(reply.text)") }
                        let job = try await harness.waitForJob(id, token: token, timeout: .seconds(120))
                        guard job["status"]?.stringValue == "succeeded" else { throw BenchError("job failed: \(job)") }
                        guard round > 0 else { continue }
                        let agent = job["metrics"]?["duration_ms"]?.doubleValue ?? .nan
                        let service = milliseconds(from: job["started_at"], to: job["finished_at"])
                        samples[isSandboxed]!.append((agent, service))
                    }
                }
                report(samples, jobs: jobs)
            }
        }
    }
}

private func milliseconds(from start: JSONValue?, to end: JSONValue?) -> Double {
    let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
    guard let start = start?.stringValue, let end = end?.stringValue,
          let from = try? style.parse(start), let to = try? style.parse(end) else { return .nan }
    return to.timeIntervalSince(from) * 1000
}

private func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return .nan }
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

private func report(_ samples: [Bool: [(agent: Double, service: Double)]], jobs: Int) {
    let sandboxAgent = median(samples[true]!.map(\.agent)), directAgent = median(samples[false]!.map(\.agent))
    let sandboxService = median(samples[true]!.map(\.service)), directService = median(samples[false]!.map(\.service))
    print("whole scripted job (3 turns: Write, Bash, text), \(jobs) jobs each, alternating, median ms")
    print("  agent run (metrics.duration_ms):   sandboxed \(format(sandboxAgent))  unsandboxed \(format(directAgent))  ratio \(format(sandboxAgent / directAgent, 3))x")
    print("  job in service (start -> finish):  sandboxed \(format(sandboxService))  unsandboxed \(format(directService))  ratio \(format(sandboxService / directService, 3))x  (goal <= 1.05x)")
    print("RESULT sandbox_job_ms=\(format(sandboxService)) direct_job_ms=\(format(directService)) job_ratio=\(format(sandboxService / directService, 3)) sandbox_agent_ms=\(format(sandboxAgent)) direct_agent_ms=\(format(directAgent)) agent_ratio=\(format(sandboxAgent / directAgent, 3))")
}
