import Foundation
import HummingbirdTesting
import NIOCore
import Queue
import TestSupport
import Testing

/// Runs the real Claude Code CLI against the scripted model server: the files and commands
/// the scripts ask for must really happen in the job's working directory.
@Suite(.enabled(if: ClaudeCLI.isAvailable, "Claude CLI not installed (see ClaudeCLI.defaultPath)"))
struct ScriptedModelServerTests {
    /// A fresh temporary working directory, removed after `body`.
    func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("scripted-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        // Resolve symlinks so paths compare equal to what the CLI reports.
        return try await body(url.resolvingSymlinksInPath().path)
    }

    func read(_ path: String) -> String? {
        try? String(contentsOfFile: path, encoding: .utf8)
    }

    @Test func writeTurnThenTextCreatesTheFileAndReportsUsage() async throws {
        let script: ModelScript = [
            ModelTurn.toolUse([.write(path: "{{cwd}}/hello.txt", content: "hello from the script\n")])
                .usage(input: 111, output: 22),
            ModelTurn.text("All written.").usage(input: 333, output: 44),
        ]
        try await withScriptedModelServer(scripts: ["write": script]) { server in
            try await withTemporaryDirectory { cwd in
                let run = try await ClaudeCLI.run(
                    prompt: "Please write the file. \(ModelScript.marker("write"))",
                    cwd: cwd, baseURL: server.baseURL, apiKey: "sk-scripted-key"
                )
                #expect(run.exitCode == 0, "stderr: \(run.stderr)")
                #expect(read("\(cwd)/hello.txt") == "hello from the script\n")

                let initEvent = run.events(ofType: "system").first { $0["subtype"]?.stringValue == "init" }
                #expect(initEvent?["cwd"]?.stringValue == cwd)
                let toolUses = run.events(ofType: "assistant").flatMap { $0["message"]?["content"]?.arrayValue ?? [] }
                    .filter { $0["type"]?.stringValue == "tool_use" }
                #expect(toolUses.map { $0["name"]?.stringValue } == ["Write"])
                #expect(toolUses.first?["input"]?["file_path"]?.stringValue == "\(cwd)/hello.txt")
                let toolResults = run.events(ofType: "user").flatMap { $0["message"]?["content"]?.arrayValue ?? [] }
                    .filter { $0["type"]?.stringValue == "tool_result" }
                #expect(toolResults.count == 1)
                #expect(toolResults.first?["is_error"]?.boolValue != true)

                let result = try #require(run.result)
                #expect(result["subtype"]?.stringValue == "success")
                #expect(result["is_error"]?.boolValue == false)
                #expect(result["num_turns"]?.intValue == 2)
                #expect(result["result"]?.stringValue == "All written.")
                #expect(result["usage"]?["input_tokens"]?.intValue == 111 + 333)
                #expect(result["usage"]?["output_tokens"]?.intValue == 22 + 44)

                let messages = server.requests.filter(\.isMessages)
                #expect(messages.count == 2)
                #expect(messages.map(\.turn) == [0, 1])
                #expect(messages.allSatisfy { $0.scriptName == "write" && $0.stream && $0.cwd == cwd })
                #expect(messages.allSatisfy { $0.headers["x-api-key"] == "sk-scripted-key" })
                #expect(messages.first?.query == "beta=true")
                #expect(messages.first?.headers["anthropic-version"] != nil)
                #expect(server.requestCount(script: "write") == 2)
            }
        }
    }

    @Test func editAndBashTakeEffect() async throws {
        let script: ModelScript = [
            .toolUse([.read(path: "{{cwd}}/notes.txt")]),
            .toolUse([
                .edit(path: "{{cwd}}/notes.txt", old: "draft", new: "final"),
                .bash("echo hi > out.txt && ls"),
            ]),
            .text("Edited and ran."),
        ]
        try await withScriptedModelServer(scripts: ["edit": script]) { server in
            try await withTemporaryDirectory { cwd in
                try "status: draft\n".write(toFile: "\(cwd)/notes.txt", atomically: true, encoding: .utf8)
                let run = try await ClaudeCLI.run(
                    prompt: "\(ModelScript.marker("edit")) edit it", cwd: cwd, baseURL: server.baseURL
                )
                #expect(run.exitCode == 0, "stderr: \(run.stderr)")
                #expect(read("\(cwd)/notes.txt") == "status: final\n")
                #expect(read("\(cwd)/out.txt") == "hi\n")
                let toolResults = run.events(ofType: "user").flatMap { $0["message"]?["content"]?.arrayValue ?? [] }
                    .filter { $0["type"]?.stringValue == "tool_result" }
                #expect(toolResults.count == 3)
                #expect(toolResults.allSatisfy { $0["is_error"]?.boolValue != true }, "\(toolResults)")
                #expect(run.result?["result"]?.stringValue == "Edited and ran.")
                // The CLI counts one turn per tool_use block it printed (Read; Edit; Bash; text).
                #expect(run.result?["num_turns"]?.intValue == 4)
                #expect(server.requests.filter(\.isMessages).map(\.turn) == [0, 1, 2])
                #expect(server.requestCount(script: "edit") == 3)
            }
        }
    }

    @Test(arguments: [
        (500, "api_error"),
        (429, "rate_limit_error"),
        (401, "authentication_error"),
    ])
    func errorTurnsEndTheRunWithTheStatus(status: Int, type: String) async throws {
        let script: ModelScript = [.error(status: status, type: type, message: "scripted \(status)", retryAfter: 0)]
        try await withScriptedModelServer(scripts: ["err": script]) { server in
            try await withTemporaryDirectory { cwd in
                let run = try await ClaudeCLI.run(
                    prompt: "\(ModelScript.marker("err"))", cwd: cwd, baseURL: server.baseURL
                )
                let result = try #require(run.result, "stdout: \(run.stdoutLines) stderr: \(run.stderr)")
                #expect(result["is_error"]?.boolValue == true)
                #expect(result["api_error_status"]?.intValue == status)
                #expect(server.requestCount(script: "err") == 1)
            }
        }
    }

    @Test func nonStreamingRequestGetsOneJSONMessage() async throws {
        let script: ModelScript = [
            ModelTurn.toolUse([.bash("pwd")]).usage(input: 7, output: 3),
        ]
        try await withScriptedModelServer(scripts: ["plain": script]) { server in
            let body: JSONValue = .object([
                "model": .string("claude-test"),
                "max_tokens": .number(100),
                "messages": .array([
                    .object(["role": .string("user"), "content": .string("go \(ModelScript.marker("plain"))")]),
                ]),
            ])
            let response = try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
                try await client.post(
                    "/v1/messages", headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: body.jsonText())
                )
            }
            #expect(response.status.code == 200)
            #expect(response.headers[.contentType] == "application/json")
            let message = try #require(response.body.flatMap { JSONValue.parse(String(buffer: $0)) })
            #expect(message["type"]?.stringValue == "message")
            #expect(message["role"]?.stringValue == "assistant")
            #expect(message["model"]?.stringValue == "claude-test")
            #expect(message["stop_reason"]?.stringValue == "tool_use")
            #expect(message["content"]?.arrayValue?.first?["name"]?.stringValue == "Bash")
            #expect(message["content"]?.arrayValue?.first?["input"]?["command"]?.stringValue == "pwd")
            #expect(message["usage"]?["input_tokens"]?.intValue == 7)
            #expect(message["usage"]?["output_tokens"]?.intValue == 3)
            #expect(server.requests.last?.stream == false)
            #expect(server.requests.last?.scriptName == "plain")

            // No marker: the default script answers "OK"; count_tokens answers a count.
            let unmarked: JSONValue = .object([
                "model": .string("claude-test"),
                "messages": .array([.object(["role": .string("user"), "content": .string("hello")])]),
            ])
            // One connection per request: /v1/messages answers close their connection.
            let fallback = try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
                try await client.post(
                    "/v1/messages", headers: [.contentType: "application/json"], body: ByteBuffer(string: unmarked.jsonText())
                )
            }
            let count = try await TestClient.withClient(host: "127.0.0.1", port: server.port) { client in
                try await client.post(
                    "/v1/messages/count_tokens", headers: [.contentType: "application/json"],
                    body: ByteBuffer(string: unmarked.jsonText())
                )
            }
            let fallbackMessage = fallback.body.flatMap { JSONValue.parse(String(buffer: $0)) }
            #expect(fallbackMessage?["content"]?.arrayValue?.first?["text"]?.stringValue == "OK")
            #expect(fallbackMessage?["stop_reason"]?.stringValue == "end_turn")
            let tokens = count.body.flatMap { JSONValue.parse(String(buffer: $0)) }?["input_tokens"]?.intValue
            #expect((tokens ?? 0) > 0)
            #expect(server.requests.count == 3)
            #expect(server.requests.filter { $0.scriptName == nil }.count == 2)
        }
    }

    @Test func delayedSlowStreamArrivesWordByWord() async throws {
        let script: ModelScript = [
            ModelTurn.text("one two three").delay(.milliseconds(300)).slowStream(chunkDelay: .milliseconds(50)),
        ]
        try await withScriptedModelServer(scripts: ["slow": script]) { server in
            try await withTemporaryDirectory { cwd in
                let run = try await ClaudeCLI.run(
                    prompt: ModelScript.marker("slow"), cwd: cwd, baseURL: server.baseURL,
                    extraArgs: ["--include-partial-messages"]
                )
                #expect(run.exitCode == 0, "stderr: \(run.stderr)")
                let deltas = run.events(ofType: "stream_event").compactMap { event -> String? in
                    guard event["event"]?["delta"]?["type"]?.stringValue == "text_delta" else { return nil }
                    return event["event"]?["delta"]?["text"]?.stringValue
                }
                #expect(deltas == ["one ", "two ", "three"])
                #expect(run.result?["result"]?.stringValue == "one two three")
                #expect((run.result?["duration_api_ms"]?.intValue ?? 0) >= 400)
            }
        }
    }

    @Test func concurrentRunsEachGetTheirOwnScript() async throws {
        let names = ["alpha", "beta", "gamma"]
        try await withScriptedModelServer { server in
            for name in names {
                server.register([
                    .toolUse([.write(path: "{{cwd}}/\(name).txt", content: "I am \(name)\n")]),
                    .text("\(name) done"),
                ], as: name)
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for name in names {
                    group.addTask {
                        try await withTemporaryDirectory { cwd in
                            let run = try await ClaudeCLI.run(
                                prompt: "job \(ModelScript.marker(name))", cwd: cwd, baseURL: server.baseURL
                            )
                            #expect(run.exitCode == 0, "stderr: \(run.stderr)")
                            let files = try FileManager.default.contentsOfDirectory(atPath: cwd)
                            #expect(files == ["\(name).txt"])
                            #expect(read("\(cwd)/\(name).txt") == "I am \(name)\n")
                            #expect(run.result?["result"]?.stringValue == "\(name) done")
                        }
                    }
                }
                try await group.waitForAll()
            }
            for name in names {
                #expect(server.requestCount(script: name) == 2)
            }
        }
    }

    /// Sends `[[script:NAME]]` without waiting for an answer; returns the connected client.
    func sendWithoutWaiting(script name: String, to server: ScriptedModelServer) async throws -> TestClient {
        let body: JSONValue = .object([
            "model": .string("m"),
            "messages": .array([.object(["role": .string("user"), "content": .string(ModelScript.marker(name))])]),
        ])
        let client = TestClient(host: "127.0.0.1", port: server.port)
        client.connect()
        try await client.executeAndDontWaitForResponse(.init(
            "/v1/messages", method: .post, headers: [.contentType: "application/json"],
            body: ByteBuffer(string: body.jsonText())
        ))
        return client
    }

    @Test func hangingRequestEndsWhenTheClientDisconnects() async throws {
        try await withScriptedModelServer(scripts: ["hang": [.hang]]) { server in
            let client = try await sendWithoutWaiting(script: "hang", to: server)
            #expect(try await eventually { server.pendingRequestCount == 1 })
            try await client.shutdown()
            #expect(try await eventually { server.pendingRequestCount == 0 })
        }
    }

    @Test func hangingRequestDoesNotBlockShutdown() async throws {
        let started = ContinuousClock.now
        let client = try await withScriptedModelServer(scripts: ["hang": [.hang]]) { server in
            let client = try await sendWithoutWaiting(script: "hang", to: server)
            // Stop the server while the request hangs and the client stays connected.
            #expect(try await eventually { server.pendingRequestCount == 1 })
            return client
        }
        // The hang lasts an hour: returning within a minute means the server did not wait for
        // it (a loose bound, robust to a loaded machine).
        #expect(ContinuousClock.now - started < .seconds(60))
        try? await client.shutdown()
    }
}
