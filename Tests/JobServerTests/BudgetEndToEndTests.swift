import Foundation
import Queue
import Testing
import TestSupport

/// Daily budgets and the disk quota end to end: a scripted model reports usage to the real
/// CLI, the worker counts it from the CLI's stream-json and from the job's model gateway, and
/// charges it to the store.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct BudgetEndToEndTests {
    static func submit(_ harness: ServiceHarness, _ token: String, script: String) async throws -> String {
        let reply = try await harness.request("POST", "/v1/jobs", token: token, json: [
            "type": "generate", "project": "p", "prompt": .string("go \(ModelScript.marker(script))"),
        ])
        try #require(reply.status == 202, "submit answered \(reply.status): \(reply.text)")
        return try #require(reply.json?["id"]?.stringValue)
    }

    /// Budgeted tokens the job's own `assistant` events report (each message counted once).
    static func streamedTokens(_ harness: ServiceHarness, _ token: String, _ id: String) async throws -> Int {
        let page = try await harness.request("GET", "/v1/jobs/\(id)/events?limit=1000", token: token).json
        var byMessage: [String: Int] = [:]
        for event in page?["events"]?.arrayValue ?? [] where event["type"]?.stringValue == "assistant" {
            guard let message = event["data"]?["message"], let messageID = message["id"]?.stringValue else { continue }
            let usage = message["usage"]
            byMessage[messageID] = ["input_tokens", "output_tokens", "cache_creation_input_tokens"]
                .reduce(0) { $0 + (usage?[$1]?.intValue ?? 0) }
        }
        return byMessage.values.reduce(0, +)
    }

    @Test func aScriptedModelDrivesTheUserOverTheDailyTokenBudget() async throws {
        try await withScriptedModelServer { model in
            model.register([ModelTurn.text("small").usage(input: 1000, output: 50)], as: "small")
            model.register([
                ModelTurn.toolUse([.write(path: "{{cwd}}/big.txt", content: "big\n")]).usage(input: 2500, output: 10),
                ModelTurn.text("never reached").delay(.seconds(5)),
            ], as: "big")
            try await withServiceHarness(model: model) { harness in
                let alice = try await harness.createUser("alice")
                try await harness.admin(["user", "limits", "alice", "--daily-tokens", "3000", "--max-running", "1"])
                try await harness.startServer()
                try harness.startWorker()

                let first = try await harness.waitForJob(try await Self.submit(harness, alice, script: "small"), token: alice)
                #expect(first["status"]?.stringValue == "succeeded", "\(first)")
                var me = try await harness.request("GET", "/v1/me", token: alice).json
                #expect(me?["usage"]?["tokens_today"]?.intValue == 1050, "the CLI's exact result: 1000 in + 50 out")

                // Under the budget, both are admitted; one runs at a time.
                let big = try await Self.submit(harness, alice, script: "big")
                let queued = try await Self.submit(harness, alice, script: "small")
                let stopped = try await harness.waitForJob(big, token: alice)
                #expect(stopped["status"]?.stringValue == "failed")
                #expect(stopped["error"]?["code"]?.stringValue == "E008", "\(stopped)")
                #expect(stopped["error"]?["details"]?["budget"]?.stringValue == "daily_tokens")
                #expect(stopped["error"]?["details"]?["limit"]?.intValue == 3000)
                // Stopped mid-run: the file its first turn wrote never reached the project.
                #expect(try await harness.request("GET", "/v1/projects/p/files/big.txt", token: alice).status == 404)

                // The waiting job is refused when its turn comes, not started.
                let refused = try await harness.waitForJob(queued, token: alice)
                #expect(refused["status"]?.stringValue == "failed")
                #expect(refused["error"]?["code"]?.stringValue == "E002", "\(refused)")
                #expect(refused["error"]?["details"]?["budget"]?.stringValue == "daily_tokens")
                #expect(refused["started_at"] == .null)

                // The day's usage is the first job's result plus what the model reported for the
                // stopped job as far as its reply got, as the gateway counted it: its 2500 input
                // tokens (reported at the reply's start, which is what crossed the budget, often
                // before the CLI printed anything) and up to its 10 output tokens; never less
                // than the CLI's own stream had reported.
                let streamed = try await Self.streamedTokens(harness, alice, big)
                me = try await harness.request("GET", "/v1/me", token: alice).json
                let charged = try #require(me?["usage"]?["tokens_today"]?.intValue)
                #expect(charged >= 1050 + 2500 && charged <= 1050 + 2510, "charged \(charged)")
                #expect(charged >= 1050 + streamed, "charged \(charged), streamed \(streamed)")

                // New submissions are refused until midnight UTC.
                let next = try await harness.request("POST", "/v1/jobs", token: alice, json: [
                    "type": "generate", "project": "p", "prompt": "one more",
                ])
                #expect(next.status == 429)
                #expect(next.json?["error"]?["code"]?.stringValue == "E002")
                #expect(next.json?["error"]?["details"]?["budget"]?.stringValue == "daily_tokens")
                let midnight = UsageDay.nextReset(after: Date()).timeIntervalSinceNow
                let retryAfter = try #require(next.header("Retry-After").flatMap(Double.init))
                #expect(abs(retryAfter - midnight) < 60, "Retry-After \(retryAfter) s, midnight in \(midnight) s")
                #expect(next.header("RateLimit") != nil && next.header("RateLimit-Policy") != nil)
            }
        }
    }

    @Test func aJobWhoseChangeWouldPassTheDiskQuotaFailsResourceLimit() async throws {
        try await withScriptedModelServer { model in
            model.register([
                .toolUse([.write(path: "{{cwd}}/large.txt", content: String(repeating: "x", count: 2000))]),
                .text("wrote it"),
            ], as: "large")
            try await withServiceHarness(model: model) { harness in
                let alice = try await harness.createUser("alice")
                try await harness.admin(["user", "limits", "alice", "--disk-quota", "1K"])
                try await harness.startServer()
                try harness.startWorker()
                let job = try await harness.waitForJob(try await Self.submit(harness, alice, script: "large"), token: alice)
                #expect(job["status"]?.stringValue == "failed")
                #expect(job["error"]?["code"]?.stringValue == "E008", "\(job)")
                #expect(job["error"]?["details"]?["quota"]?.stringValue == "disk_quota_bytes")
                #expect(job["result"]?["patch"]?.stringValue?.contains("large.txt") == true, "the patch is kept")
                #expect(try await harness.request("GET", "/v1/projects/p/files/large.txt", token: alice).status == 404)
            }
        }
    }
}
