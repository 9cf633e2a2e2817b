import Foundation
import Queue
import Testing
import TestSupport

/// Every job kind end to end: HTTP → store → a separate worker process → the real Claude Code
/// CLI → a scripted model → result. Checks the files the CLI really wrote, the patch, the
/// metrics and the structured results.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct EndToEndJobTests {
    static func submit(_ harness: ServiceHarness, token: String, _ body: JSONValue, headers: [String: String] = [:]) async throws -> String {
        let reply = try await harness.request("POST", "/v1/jobs", token: token, json: body, headers: headers)
        try #require(reply.status == 202, "submit answered \(reply.status): \(reply.text)")
        return try #require(reply.json?["id"]?.stringValue)
    }

    static func putFile(_ harness: ServiceHarness, token: String, project: String, path: String, _ text: String) async throws {
        let reply = try await harness.request("PUT", "/v1/projects/\(project)/files/\(path)", token: token, body: Array(text.utf8))
        try #require(reply.status == 201 || reply.status == 200, "put answered \(reply.status): \(reply.text)")
    }

    static func fileText(_ harness: ServiceHarness, token: String, project: String, path: String) async throws -> String? {
        let reply = try await harness.request("GET", "/v1/projects/\(project)/files/\(path)", token: token)
        return reply.status == 200 ? reply.text : nil
    }

    @Test func generateWritesFilesRunsBashAndReportsPatchAndMetrics() async throws {
        try await withScriptedModelServer { model in
            model.register([
                ModelTurn.toolUse([.write(path: "{{cwd}}/src/hello.py", content: "print('hello')\n")]).usage(input: 1200, output: 80),
                ModelTurn.toolUse([.bash("python3 src/hello.py > out.txt && echo ran")]).usage(input: 1300, output: 40),
                ModelTurn.text("Created src/hello.py.").usage(input: 1400, output: 10),
            ], as: "generate")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("alice")
                try await harness.startServer()
                try harness.startWorker()
                let id = try await Self.submit(harness, token: token, [
                    "type": "generate", "project": "demo", "prompt": "write hello \(ModelScript.marker("generate"))",
                ])
                let job = try await harness.waitForJob(id, token: token)
                #expect(job["status"]?.stringValue == "succeeded", "\(job)")
                let result = try #require(job["result"])
                #expect(result["text"]?.stringValue == "Created src/hello.py.")
                let files = try #require(result["files"]?.arrayValue)
                let paths = Set(files.compactMap { $0["path"]?.stringValue })
                #expect(paths == ["src/hello.py", "out.txt"])
                #expect(files.allSatisfy { $0["action"]?.stringValue == "created" })
                let patch = try #require(result["patch"]?.stringValue)
                #expect(patch.contains("+print('hello')"))
                #expect(patch.contains("b/out.txt"))
                #expect(result["applied"]?.boolValue == true)
                // The files the CLI wrote and the command it ran are now in the project.
                #expect(try await Self.fileText(harness, token: token, project: "demo", path: "src/hello.py") == "print('hello')\n")
                #expect(try await Self.fileText(harness, token: token, project: "demo", path: "out.txt") == "hello\n")
                let metrics = try #require(job["metrics"])
                #expect(metrics["input_tokens"]?.intValue == 3900)
                #expect(metrics["output_tokens"]?.intValue == 130)
                #expect(metrics["turns"]?.intValue == 3)
                #expect((metrics["duration_ms"]?.intValue ?? 0) > 0)
                #expect((metrics["cpu_ms"]?.intValue ?? 0) > 0)
                #expect((metrics["peak_memory_bytes"]?.intValue ?? 0) > 1_000_000)
                #expect(metrics["exit_code"]?.intValue == 0)
                // Every stream-json line is an event, densely numbered.
                let events = try await harness.request("GET", "/v1/jobs/\(id)/events?limit=1000", token: token).json
                let list = try #require(events?["events"]?.arrayValue)
                #expect(list.map { $0["seq"]?.intValue ?? 0 } == Array(1...list.count))
                let types = list.compactMap { $0["type"]?.stringValue }
                #expect(types.first == "status")
                #expect(types.contains("system") && types.contains("assistant") && types.contains("user"))
                #expect(types.last == "result")
            }
        }
    }

    @Test func refactorEditsAnExistingFileAndDryRunLeavesTheProjectAlone() async throws {
        try await withScriptedModelServer { model in
            let edit: ModelScript = [
                .toolUse([.read(path: "{{cwd}}/app.py")]),
                .toolUse([.edit(path: "{{cwd}}/app.py", old: "def f(x):", new: "def square(x):")]),
                .text("Renamed f to square."),
            ]
            model.register(edit, as: "refactor")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("bob")
                try await harness.startServer()
                try harness.startWorker()
                try await Self.putFile(harness, token: token, project: "lib", path: "app.py", "def f(x):\n    return x * x\n")

                let dry = try await Self.submit(harness, token: token, [
                    "type": "refactor", "project": "lib", "files": ["app.py"],
                    "prompt": "rename \(ModelScript.marker("refactor"))", "options": ["dry_run": true],
                ])
                let dryJob = try await harness.waitForJob(dry, token: token)
                #expect(dryJob["status"]?.stringValue == "succeeded", "\(dryJob)")
                #expect(dryJob["result"]?["applied"]?.boolValue == false)
                #expect(dryJob["result"]?["patch"]?.stringValue?.contains("+def square(x):") == true)
                #expect(try await Self.fileText(harness, token: token, project: "lib", path: "app.py") == "def f(x):\n    return x * x\n")

                let real = try await Self.submit(harness, token: token, [
                    "type": "refactor", "project": "lib", "files": ["app.py"], "prompt": "rename \(ModelScript.marker("refactor"))",
                ])
                let job = try await harness.waitForJob(real, token: token)
                #expect(job["status"]?.stringValue == "succeeded", "\(job)")
                let files = try #require(job["result"]?["files"]?.arrayValue)
                #expect(files.count == 1)
                #expect(files.first?["action"]?.stringValue == "modified")
                #expect(files.first?["diff"]?.stringValue?.contains("-def f(x):") == true)
                #expect(try await Self.fileText(harness, token: token, project: "lib", path: "app.py") == "def square(x):\n    return x * x\n")
            }
        }
    }

    @Test func analyzeAndReviewReturnStructuredResultsReadOnly() async throws {
        try await withScriptedModelServer { model in
            model.register([
                .toolUse([.read(path: "{{cwd}}/pay.py")]),
                .text("""
                The module is small.
                ```json
                {"summary": "one function", "analysis": {"functions": 1, "language": "python"}, "suggestions": ["add tests"]}
                ```
                """),
            ], as: "analyze")
            model.register([
                .toolUse([.read(path: "{{cwd}}/pay.py")]),
                .text("""
                ```json
                {"summary": "one injection", "findings": [
                  {"file": "pay.py", "line": 2, "severity": "critical", "message": "SQL built from input", "suggestion": "use parameters"},
                  {"file": "pay.py", "line": 1, "severity": "info", "message": "naming", "suggestion": null}
                ]}
                ```
                """),
            ], as: "review")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("carol")
                try await harness.startServer()
                try harness.startWorker()
                try await Self.putFile(harness, token: token, project: "billing", path: "pay.py",
                                       "def pay(q):\n    db.execute('select ' + q)\n")
                let analyze = try await Self.submit(harness, token: token, [
                    "type": "analyze", "project": "billing", "prompt": "analyze \(ModelScript.marker("analyze"))",
                ])
                let review = try await Self.submit(harness, token: token, [
                    "type": "review", "project": "billing", "files": ["pay.py"],
                    "prompt": "review \(ModelScript.marker("review"))", "options": ["severity": "warning"],
                ])
                let analyzed = try await harness.waitForJob(analyze, token: token)
                #expect(analyzed["status"]?.stringValue == "succeeded", "\(analyzed)")
                #expect(analyzed["result"]?["analysis"]?["functions"]?.intValue == 1)
                #expect(analyzed["result"]?["suggestions"]?.arrayValue?.first?.stringValue == "add tests")
                #expect(analyzed["result"]?["files"]?.arrayValue?.isEmpty == true)

                let reviewed = try await harness.waitForJob(review, token: token)
                #expect(reviewed["status"]?.stringValue == "succeeded", "\(reviewed)")
                let findings = try #require(reviewed["result"]?["findings"]?.arrayValue)
                #expect(findings.count == 1, "info finding filtered out by severity=warning")
                #expect(findings.first?["severity"]?.stringValue == "critical")
                #expect(findings.first?["line"]?.intValue == 2)
                // The review asked for the tools it got: read-only, so the CLI was given no Write/Edit/Bash.
                let request = try #require(model.requests.last { $0.scriptName == "review" })
                let tools = request.body["tools"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
                #expect(tools.contains("Read"))
                #expect(!tools.contains("Write") && !tools.contains("Bash") && !tools.contains("Edit"))
            }
        }
    }

    @Test func concurrentChangeToTheSameFileIsAConflictThatKeepsThePatch() async throws {
        try await withScriptedModelServer { model in
            model.register([
                .toolUse([.read(path: "{{cwd}}/a.txt")]),
                .toolUse([.edit(path: "{{cwd}}/a.txt", old: "one", new: "two")]),
                ModelTurn.text("edited").delay(.seconds(2)),
            ], as: "slow-edit")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("dave")
                try await harness.startServer()
                try harness.startWorker()
                try await Self.putFile(harness, token: token, project: "p", path: "a.txt", "one\n")
                let id = try await Self.submit(harness, token: token, [
                    "type": "refactor", "project": "p", "files": ["a.txt"], "prompt": "edit \(ModelScript.marker("slow-edit"))",
                ])
                try await harness.waitForStatus(id, "running", token: token)
                try await Task.sleep(for: .milliseconds(800))
                try await Self.putFile(harness, token: token, project: "p", path: "a.txt", "changed meanwhile\n")
                let job = try await harness.waitForJob(id, token: token)
                #expect(job["status"]?.stringValue == "failed")
                #expect(job["error"]?["code"]?.stringValue == "E014", "\(job)")
                #expect(job["result"]?["patch"]?.stringValue?.contains("+two") == true)
                #expect(try await Self.fileText(harness, token: token, project: "p", path: "a.txt") == "changed meanwhile\n")
            }
        }
    }
}
