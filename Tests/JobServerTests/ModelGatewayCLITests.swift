import Foundation
import JobServer
import Queue
import TestSupport
import Testing

/// The real Claude Code CLI, given only the gateway's address and the placeholder key, runs a
/// scripted job end to end; the real key reaches the upstream and nothing the CLI can see.
@Suite(.enabled(if: ClaudeCLI.isAvailable, "Claude CLI not installed (see ClaudeCLI.defaultPath)"))
struct ModelGatewayCLITests {
    /// Bash that writes the environment and command line of itself and every ancestor process
    /// (the CLI among them) to `seen.txt`, one NUL-separated entry a line.
    static let dumpAncestors = #"""
        p=$$; while [ -n "$p" ] && [ "$p" -gt 1 ]; do cat /proc/$p/environ /proc/$p/cmdline 2>/dev/null | tr '\0' '\n'; p=$(awk '/^PPid:/ {print $2}' /proc/$p/status); done > seen.txt
        """#

    @Test func realCLIRunsAJobThroughTheGatewayWithoutEverSeeingTheKey() async throws {
        let script: ModelScript = [
            ModelTurn.toolUse([.write(path: "{{cwd}}/hello.txt", content: "hello through the gateway\n")]).usage(input: 210, output: 31),
            ModelTurn.toolUse([.bash(Self.dumpAncestors)]).usage(input: 250, output: 12),
            ModelTurn.text("All done.").usage(input: 290, output: 5, cacheCreation: 40),
        ]
        try await withGatewayFixture(scripts: ["job": script]) { fixture in
            try await withTemporaryDirectory(prefix: "gw-cli-") { cwd in
                let baseURL = try #require(fixture.gateway.tcpBaseURL)
                let run = try await ClaudeCLI.run(
                    prompt: "Write the file. \(ModelScript.marker("job"))", cwd: cwd,
                    baseURL: baseURL, apiKey: fixture.gateway.placeholderKey
                )
                #expect(run.exitCode == 0, "stderr: \(run.stderr)")
                #expect(try String(contentsOfFile: cwd + "/hello.txt", encoding: .utf8) == "hello through the gateway\n")
                let result = try #require(run.result, "stdout: \(run.stdoutLines)")
                #expect(result["is_error"]?.boolValue == false)
                #expect(result["result"]?.stringValue == "All done.")

                // The upstream got every call, each with the real key and none with the placeholder.
                let upstream = fixture.server.requests
                #expect(upstream.filter(\.isMessages).map(\.turn) == [0, 1, 2])
                #expect(upstream.allSatisfy { $0.headers["x-api-key"] == fixture.realKey })
                #expect(upstream.allSatisfy { !$0.headers.values.contains { $0.contains(fixture.gateway.placeholderKey) } })
                #expect(upstream.allSatisfy { $0.query == "beta=true" && $0.headers["anthropic-version"] != nil })

                // The CLI's own environment and argv (captured from inside the job) hold the
                // placeholder, never the real key; neither does anything it printed or wrote.
                let seen = try String(contentsOfFile: cwd + "/seen.txt", encoding: .utf8)
                #expect(seen.contains("ANTHROPIC_API_KEY=\(fixture.gateway.placeholderKey)"))
                #expect(seen.contains("ANTHROPIC_BASE_URL=\(baseURL)"))
                #expect(!seen.contains(fixture.realKey))
                #expect(!run.stdoutLines.contains { $0.contains(fixture.realKey) })
                #expect(!run.stderr.contains(fixture.realKey))
                for file in try FileManager.default.contentsOfDirectory(atPath: cwd) {
                    #expect(!(try String(contentsOfFile: cwd + "/" + file, encoding: .utf8)).contains(fixture.realKey))
                }

                // The gateway metered what the CLI reports having used.
                let usage = fixture.gateway.usage
                #expect(usage.tokens.input == 210 + 250 + 290)
                #expect(usage.tokens.output == 31 + 12 + 5)
                #expect(usage.tokens.cacheCreation == 40)
                #expect(result["usage"]?["input_tokens"]?.intValue == Int(usage.tokens.input))
                #expect(result["usage"]?["output_tokens"]?.intValue == Int(usage.tokens.output))
                #expect(usage.requests == upstream.count)
                #expect(usage.refusedRequests == 0)
            }
        }
    }

    @Test func exhaustedBudgetEndsTheCLIRunWithoutRetries() async throws {
        let script: ModelScript = [
            ModelTurn.toolUse([.write(path: "{{cwd}}/a.txt", content: "a\n")]).usage(input: 500, output: 20),
            ModelTurn.text("never reached"),
        ]
        try await withGatewayFixture(scripts: ["budget": script], tokenBudget: 400) { fixture in
            try await withTemporaryDirectory(prefix: "gw-cli-") { cwd in
                // Retries allowed: the gateway's `x-should-retry: false` is what must stop them.
                let run = try await ClaudeCLI.run(
                    prompt: "Go. \(ModelScript.marker("budget"))", cwd: cwd,
                    baseURL: try #require(fixture.gateway.tcpBaseURL), apiKey: fixture.gateway.placeholderKey,
                    extraEnvironment: ["CLAUDE_CODE_MAX_RETRIES": "3"]
                )
                let result = try #require(run.result, "stdout: \(run.stdoutLines) stderr: \(run.stderr)")
                #expect(result["is_error"]?.boolValue == true)
                #expect(result["api_error_status"]?.intValue == 429)
                #expect(fixture.gateway.budgetExceeded)
                #expect(fixture.server.requestCount(script: "budget") == 1)
                #expect(fixture.gateway.usage.refusedRequests == 1)
            }
        }
    }
}
