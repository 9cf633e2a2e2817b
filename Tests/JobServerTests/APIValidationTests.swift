import Foundation
import HTTPTypes
import HummingbirdTesting
import JobServer
import NIOCore
import Queue
import TestSupport
import Testing

/// One submission body that must be refused, with the answer it must get.
struct RejectedSubmission: Sendable, CustomTestStringConvertible {
    var name: String
    var body: String
    var status: HTTPResponse.Status
    var code: ErrorCode = .invalidRequest
    /// Expected `details.field`.
    var field: String?
    /// Expected `details.<key>` string values (`path`, `project`).
    var details: [String: String] = [:]

    var testDescription: String { name }

    /// A `generate` body with `fields` spliced in (raw JSON members).
    static func generate(_ fields: String) -> String {
        #"{"type":"generate","project":"app","prompt":"do it""# + (fields.isEmpty ? "" : "," + fields) + "}"
    }

    static func option(_ member: String) -> String {
        generate(#""options":{\#(member)}"#)
    }
}

/// The HTTP API's validation, authentication, isolation and error envelope, driven through
/// the real router (`buildRouter`) over a real SQLite store and a real workspace root.
@Suite struct APIValidationTests {
    // MARK: - Authentication

    @Test func missingTokenIs401() async throws {
        try await withAPI { _, client in
            let response = try await client.send(.get, "/v1/jobs")
            expectError(response, .unauthorized, .unauthorized)
            #expect(response.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true)
        }
    }

    @Test func badTokensAre401() async throws {
        try await withAPI { fixture, client in
            let attempts: [HTTPFields] = [
                [.authorization: "Bearer js_not-a-real-token"],
                [.authorization: "Bearer "],
                [.authorization: "Basic YWxpY2U6c2VjcmV0"],
                [.authorization: "Token \(fixture.alice.secret)"],
                [AuthHeader.apiKey: "js_not-a-real-token"],
                [.authorization: "Bearer " + String(repeating: "x", count: 300)],
                // A bad Authorization header is not rescued by a good x-api-key.
                [.authorization: "Basic Zm9v", AuthHeader.apiKey: fixture.alice.secret],
            ]
            for headers in attempts {
                let response = try await client.send(.get, "/v1/jobs", headers: headers)
                expectError(response, .unauthorized, .unauthorized)
                #expect(response.headers[.wwwAuthenticate] != nil, "\(headers)")
            }
        }
    }

    @Test func revokedTokenIs401() async throws {
        try await withAPI { fixture, client in
            #expect(try await client.send(.get, "/v1/jobs", as: fixture.alice).status == .ok)
            #expect(try await fixture.store.revokeToken(id: fixture.alice.tokenID))
            expectError(try await client.send(.get, "/v1/jobs", as: fixture.alice), .unauthorized, .unauthorized)
            expectError(try await client.send(.get, "/v1/jobs", headers: [AuthHeader.apiKey: fixture.alice.secret]),
                        .unauthorized, .unauthorized)
            // Bob's token is untouched.
            #expect(try await client.send(.get, "/v1/jobs", as: fixture.bob).status == .ok)
        }
    }

    @Test func bearerAndAPIKeyAreBothAccepted() async throws {
        try await withAPI { fixture, client in
            let secret = fixture.alice.secret
            for headers: HTTPFields in [
                [.authorization: "Bearer \(secret)"],
                [.authorization: "bearer \(secret)"],
                [AuthHeader.apiKey: secret],
            ] {
                let response = try await client.send(.get, "/v1/projects", headers: headers)
                #expect(response.status == .ok, "\(headers): \(response)")
                #expect(response.json?["projects"]?.arrayValue != nil, "\(response)")
            }
        }
    }

    // MARK: - Submission bodies

    @Test func malformedBodiesAreRefused() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            expectError(try await client.submit(#"{"type":"generate","#, as: alice), .badRequest, .invalidRequest)
            expectError(try await client.submit("not json at all", as: alice), .badRequest, .invalidRequest)
            for nonObject in ["[1,2]", #""generate""#, "42", "null", "true"] {
                expectError(try await client.submit(nonObject, as: alice), .badRequest, .invalidRequest)
            }
            expectError(try await client.send(.post, "/v1/jobs", as: alice, bytes: []), .badRequest, .invalidRequest)
            expectError(try await client.send(.post, "/v1/jobs", as: alice), .badRequest, .invalidRequest)
            let valid = RejectedSubmission.generate("")
            expectError(try await client.send(.post, "/v1/jobs", as: alice, json: valid, contentType: "text/plain"),
                        .unsupportedMediaType, .invalidRequest)
            expectError(try await client.send(.post, "/v1/jobs", as: alice, json: valid, contentType: "application/x-www-form-urlencoded"),
                        .unsupportedMediaType, .invalidRequest)
            // Bytes that are not UTF-8.
            expectError(try await client.send(.post, "/v1/jobs", as: alice, bytes: [0xFF, 0xFE, 0x7B], contentType: "application/json"),
                        .badRequest, .invalidRequest)
            // Above the 512 KiB body limit.
            let huge = RejectedSubmission.generate(#""metadata":{"pad":"\#(String(repeating: "x", count: 600_000))"}"#)
            expectError(try await client.submit(huge, as: alice), .contentTooLarge, .invalidRequest)
            // A charset parameter is fine.
            let ok = try await client.send(.post, "/v1/jobs", as: alice, json: valid, contentType: "application/json; charset=utf-8")
            #expect(ok.status == .accepted, "\(ok)")
            // Nothing refused was stored.
            #expect(try await fixture.store.jobs(userID: alice.id, filter: JobFilter(), after: nil, limit: 10).count == 1)
        }
    }

    static let projectNameCases: [RejectedSubmission] = ["../x", ".hidden", "", String(repeating: "p", count: 65), "a/b", "-dash", "sp ace", "é"]
        .map { name in
            RejectedSubmission(name: "project \(jsonString(name))",
                               body: #"{"type":"generate","project":\#(jsonString(name)),"prompt":"p"}"#,
                               status: .unprocessableContent, details: ["project": name])
        }

    static let fileCases: [RejectedSubmission] = ["/etc/passwd", "../x", "src/../../x", "a//b", "a/", "./a", "a/\u{0}b", "", "a\\b",
                                                  String(repeating: "d", count: 256)]
        .map { path in
            RejectedSubmission(name: "files \(jsonString(path))", body: RejectedSubmission.generate(#""files":[\#(jsonString(path))]"#),
                               status: .badRequest, code: .fileAccess, details: ["path": path])
        }

    static let fieldCases: [RejectedSubmission] = [
        .init(name: "unknown top-level field", body: RejectedSubmission.generate(#""bogus":1"#), status: .unprocessableContent, field: "bogus"),
        .init(name: "unknown option", body: RejectedSubmission.option(#""colour":"red""#), status: .unprocessableContent, field: "options.colour"),
        .init(name: "missing type", body: #"{"project":"app","prompt":"p"}"#, status: .badRequest, field: "type"),
        .init(name: "type not a string", body: #"{"type":5,"project":"app","prompt":"p"}"#, status: .badRequest, field: "type"),
        .init(name: "unknown type", body: #"{"type":"deploy","project":"app","prompt":"p"}"#, status: .unprocessableContent, field: "type"),
        .init(name: "missing project", body: #"{"type":"generate","prompt":"p"}"#, status: .badRequest, field: "project"),
        .init(name: "project not a string", body: #"{"type":"generate","project":["app"],"prompt":"p"}"#, status: .badRequest, field: "project"),
        .init(name: "missing prompt", body: #"{"type":"generate","project":"app"}"#, status: .badRequest, field: "prompt"),
        .init(name: "prompt not a string", body: #"{"type":"generate","project":"app","prompt":{}}"#, status: .badRequest, field: "prompt"),
        .init(name: "empty prompt", body: #"{"type":"generate","project":"app","prompt":""}"#, status: .unprocessableContent, field: "prompt"),
        .init(name: "whitespace prompt", body: #"{"type":"generate","project":"app","prompt":" \n\t\r "}"#, status: .unprocessableContent, field: "prompt"),
        .init(name: "prompt over 100000 bytes",
              body: #"{"type":"generate","project":"app","prompt":"\#(String(repeating: "é", count: 50_001))"}"#,
              status: .contentTooLarge, field: "prompt"),
        .init(name: "NUL in prompt", body: #"{"type":"generate","project":"app","prompt":"a\u0000b"}"#, status: .unprocessableContent, field: "prompt"),
        .init(name: "files not an array", body: RejectedSubmission.generate(#""files":"src/a.py""#), status: .badRequest, field: "files"),
        .init(name: "files with a number", body: RejectedSubmission.generate(#""files":[1]"#), status: .badRequest, field: "files"),
        .init(name: "too many files",
              body: RejectedSubmission.generate(#""files":[\#((0...1000).map { "\"f\($0)\"" }.joined(separator: ","))]"#),
              status: .unprocessableContent, field: "files"),
        .init(name: "options not an object", body: RejectedSubmission.generate(#""options":"fast""#), status: .badRequest, field: "options"),
        .init(name: "timeout_s 0", body: RejectedSubmission.option(#""timeout_s":0"#), status: .unprocessableContent, field: "options.timeout_s"),
        .init(name: "timeout_s 3601", body: RejectedSubmission.option(#""timeout_s":3601"#), status: .unprocessableContent, field: "options.timeout_s"),
        .init(name: "timeout_s string", body: RejectedSubmission.option(#""timeout_s":"60""#), status: .badRequest, field: "options.timeout_s"),
        .init(name: "timeout_s fraction", body: RejectedSubmission.option(#""timeout_s":1.5"#), status: .badRequest, field: "options.timeout_s"),
        .init(name: "idle_timeout_s 0", body: RejectedSubmission.option(#""idle_timeout_s":0"#), status: .unprocessableContent, field: "options.idle_timeout_s"),
        .init(name: "max_turns 0", body: RejectedSubmission.option(#""max_turns":0"#), status: .unprocessableContent, field: "options.max_turns"),
        .init(name: "max_turns 201", body: RejectedSubmission.option(#""max_turns":201"#), status: .unprocessableContent, field: "options.max_turns"),
        .init(name: "max_attempts 11", body: RejectedSubmission.option(#""max_attempts":11"#), status: .unprocessableContent, field: "options.max_attempts"),
        .init(name: "severity bogus", body: RejectedSubmission.option(#""severity":"bogus""#), status: .unprocessableContent, field: "options.severity"),
        .init(name: "format xml", body: RejectedSubmission.option(#""format":"xml""#), status: .unprocessableContent, field: "options.format"),
        .init(name: "dry_run yes", body: RejectedSubmission.option(#""dry_run":"yes""#), status: .badRequest, field: "options.dry_run"),
        .init(name: "fix 1", body: RejectedSubmission.option(#""fix":1"#), status: .badRequest, field: "options.fix"),
        .init(name: "model with spaces", body: RejectedSubmission.option(#""model":"claude sonnet""#), status: .unprocessableContent, field: "options.model"),
        .init(name: "model too long", body: RejectedSubmission.option(#""model":"\#(String(repeating: "m", count: 101))""#),
              status: .unprocessableContent, field: "options.model"),
        .init(name: "model not a string", body: RejectedSubmission.option(#""model":7"#), status: .badRequest, field: "options.model"),
        .init(name: "priority 101", body: RejectedSubmission.generate(#""priority":101"#), status: .unprocessableContent, field: "priority"),
        .init(name: "priority -101", body: RejectedSubmission.generate(#""priority":-101"#), status: .unprocessableContent, field: "priority"),
        .init(name: "priority fraction", body: RejectedSubmission.generate(#""priority":1.5"#), status: .badRequest, field: "priority"),
        .init(name: "priority string", body: RejectedSubmission.generate(#""priority":"high""#), status: .badRequest, field: "priority"),
        .init(name: "priority huge", body: RejectedSubmission.generate(#""priority":1e300"#), status: .badRequest, field: "priority"),
        .init(name: "metadata not an object", body: RejectedSubmission.generate(#""metadata":[1]"#), status: .badRequest, field: "metadata"),
        .init(name: "metadata too large", body: RejectedSubmission.generate(#""metadata":{"k":"\#(String(repeating: "v", count: 17_000))"}"#),
              status: .contentTooLarge, field: "metadata"),
    ]

    @Test(arguments: APIValidationTests.fieldCases + APIValidationTests.projectNameCases + APIValidationTests.fileCases)
    func invalidSubmissionIsRefused(_ submission: RejectedSubmission) async throws {
        try await withAPI { fixture, client in
            let response = try await client.submit(submission.body, as: fixture.alice)
            expectError(response, submission.status, submission.code, field: submission.field)
            for (key, value) in submission.details {
                #expect(response.errorDetails?[key]?.stringValue == value, "details.\(key): \(response)")
            }
            #expect(try await fixture.store.jobs(userID: fixture.alice.id, filter: JobFilter(), after: nil, limit: 1).isEmpty)
        }
    }

    @Test func boundaryValuesAreAccepted() async throws {
        try await withAPI { fixture, client in
            let bodies = [
                #"{"type":"generate","project":"\#(String(repeating: "p", count: 64))","prompt":"p"}"#,
                #"{"type":"generate","project":"a","prompt":"\#(String(repeating: "x", count: 100_000))"}"#,
                RejectedSubmission.option(#""timeout_s":3600,"idle_timeout_s":1,"max_turns":200,"max_attempts":10,"model":"claude-sonnet-4-5[1m]:v1.2_x","severity":"critical","format":"json","dry_run":true,"fix":true"#),
                RejectedSubmission.option(#""timeout_s":null,"model":null"#),
                RejectedSubmission.generate(#""priority":-100,"files":null,"metadata":null,"options":null"#),
                RejectedSubmission.generate(#""priority":100.0"#),
            ]
            for body in bodies {
                let response = try await client.submit(body, as: fixture.alice)
                #expect(response.status == .accepted, "\(body.prefix(200)): \(response)")
            }
        }
    }

    // MARK: - Projects and files named by a submission

    @Test func submitForAMissingProjectIs404() async throws {
        try await withAPI { fixture, client in
            for type in ["analyze", "refactor", "review"] {
                let response = try await client.submit(#"{"type":"\#(type)","project":"ghost","prompt":"look"}"#, as: fixture.alice)
                expectError(response, .notFound, .notFound)
                #expect(response.errorDetails?["project"]?.stringValue == "ghost")
            }
            // Bob's project does not exist for Alice.
            try fixture.workspaces.putFile(user: fixture.bob.id, project: ProjectName(validating: "bobs"),
                                           path: RelativePath(validating: "a.txt"), bytes: Array("b".utf8))
            expectError(try await client.submit(#"{"type":"analyze","project":"bobs","prompt":"look"}"#, as: fixture.alice),
                        .notFound, .notFound)
            // generate may create a new project.
            #expect(try await client.submit(#"{"type":"generate","project":"ghost","prompt":"make"}"#, as: fixture.alice).status == .accepted)
        }
    }

    @Test func submitNamingAMissingFileIs404FileAccess() async throws {
        try await withAPI { fixture, client in
            let put = try await client.send(.put, "/v1/projects/app/files/src/a.py", as: fixture.alice, bytes: Array("x = 1\n".utf8))
            #expect(put.status == .created, "\(put)")
            let response = try await client.submit(#"{"type":"review","project":"app","prompt":"check","files":["src/a.py","src/b.py"]}"#,
                                                   as: fixture.alice)
            expectError(response, .notFound, .fileAccess)
            #expect(response.errorDetails?["path"]?.stringValue == "src/b.py")
            // A directory is not a file.
            expectError(try await client.submit(#"{"type":"review","project":"app","prompt":"check","files":["src"]}"#, as: fixture.alice),
                        .notFound, .fileAccess)
        }
    }

    // MARK: - Success path

    @Test func submitAnswers202WithLocationAndTheJob() async throws {
        try await withAPI { fixture, client in
            let put = try await client.send(.put, "/v1/projects/billing-api/files/src/pay.py", as: fixture.alice, bytes: Array("pay()\n".utf8))
            #expect(put.status == .created)
            let body = """
                {"type":"review","project":"billing-api","prompt":"Review the payment module",
                 "files":["src/pay.py"],
                 "options":{"timeout_s":900,"max_turns":20,"model":"claude-sonnet-4-5","severity":"warning","max_attempts":2},
                 "metadata":{"ticket":"OPS-12"},"priority":5}
                """
            let response = try await client.submit(body, as: fixture.alice)
            #expect(response.status == .accepted, "\(response)")
            #expect(response.headers[.contentType] == "application/json")
            #expect(response.headers[AuthHeader.replayed] == nil)
            let job = try #require(response.json)
            let id = try #require(job["id"]?.stringValue)
            #expect(JobID(rawValue: id) != nil, "id \(id)")
            #expect(response.headers[.location] == "/v1/jobs/\(id)")
            #expect(job["type"] == .string("review"))
            #expect(job["project"] == .string("billing-api"))
            #expect(job["status"] == .string("queued"))
            #expect(job["priority"]?.intValue == 5)
            #expect(job["attempt"]?.intValue == 1)
            #expect(job["max_attempts"]?.intValue == 2)
            #expect(job["created_at"]?.stringValue.flatMap { try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse($0) } != nil)
            for null in ["started_at", "finished_at", "result", "metrics", "error"] {
                #expect(job[null] == .null, "\(null) should be null: \(response)")
            }
            #expect(job["cancel_requested"] == .bool(false))
            #expect(job["last_event_seq"]?.intValue == 0)
            // The submit answer leaves the position out (it costs a count over the queue); GET has it.
            #expect(job["queue_position"] == .null)
            let position = try await client.send(.get, "/v1/jobs/\(try #require(job["id"]?.stringValue))", as: fixture.alice)
            #expect(position.json?["queue_position"]?.intValue == 0)
            #expect(job["prompt"] == .string("Review the payment module"))
            #expect(job["files"] == .array([.string("src/pay.py")]))
            #expect(job["metadata"] == .object(["ticket": .string("OPS-12")]))
            let options = try #require(job["options"]?.objectValue)
            #expect(options["format"] == .string("json"))  // review defaults to json
            #expect(options["timeout_s"]?.intValue == 900)
            #expect(options["idle_timeout_s"]?.intValue == 120)
            #expect(options["max_turns"]?.intValue == 20)
            #expect(options["model"] == .string("claude-sonnet-4-5"))
            #expect(options["severity"] == .string("warning"))
            #expect(options["dry_run"] == .bool(false))
            #expect(options["fix"] == .bool(false))
            #expect(options["max_attempts"]?.intValue == 2)

            let read = try await client.send(.get, "/v1/jobs/\(id)", as: fixture.alice)
            #expect(read.status == .ok)
            #expect(read.json?["id"] == .string(id))
            #expect(read.json?["status"] == .string("queued"))
            #expect(read.json?["prompt"] == job["prompt"])
            // The job is really in the store, owned by Alice.
            let jobID = try #require(JobID(rawValue: id))
            let stored = try #require(try await fixture.store.job(jobID, userID: fixture.alice.id))
            #expect(stored.priority == 5 && stored.maxAttempts == 2 && stored.kind == "review")
        }
    }

    @Test func generateDefaultsAreApplied() async throws {
        try await withAPI { fixture, client in
            let response = try await client.submit(#"{"type":"generate","project":"new-app","prompt":"scaffold"}"#, as: fixture.alice)
            #expect(response.status == .accepted)
            let options = try #require(response.json?["options"]?.objectValue)
            #expect(options["format"] == .string("text"))
            #expect(options["timeout_s"]?.intValue == 600)
            #expect(options["max_attempts"]?.intValue == 3)
            #expect(options["severity"] == .string("info"))
            #expect(options["max_turns"] == nil && options["model"] == nil)
            #expect(response.json?["files"] == .array([]))
            #expect(response.json?["metadata"] == .object([:]))
            #expect(response.json?["priority"]?.intValue == 0)
        }
    }

    // MARK: - Idempotency

    @Test func idempotencyKeyReplaysAndConflicts() async throws {
        try await withAPI { fixture, client in
            let body = #"{"type":"generate","project":"app","prompt":"once"}"#
            let key: HTTPFields = [AuthHeader.idempotencyKey: "order-42"]
            let first = try await client.submit(body, as: fixture.alice, headers: key)
            #expect(first.status == .accepted)
            #expect(first.headers[AuthHeader.replayed] == nil)
            let id = try #require(first.json?["id"]?.stringValue)

            let second = try await client.submit(body, as: fixture.alice, headers: key)
            #expect(second.status == .accepted)
            #expect(second.json?["id"] == .string(id))
            #expect(second.headers[AuthHeader.replayed] == "true")
            #expect(second.headers[.location] == "/v1/jobs/\(id)")

            // The same request with the defaults spelled out is the same request.
            let spelled = try await client.submit(#"{"type":"generate","project":"app","prompt":"once","options":{"timeout_s":600},"priority":0}"#,
                                                  as: fixture.alice, headers: key)
            #expect(spelled.json?["id"] == .string(id), "\(spelled)")

            let conflict = try await client.submit(#"{"type":"generate","project":"app","prompt":"twice"}"#, as: fixture.alice, headers: key)
            expectError(conflict, .conflict, .conflict)
            #expect(conflict.errorDetails?["job_id"] == .string(id))

            // Keys are per user: Bob's identical key makes Bob's own job.
            let bobs = try await client.submit(body, as: fixture.bob, headers: key)
            #expect(bobs.status == .accepted)
            #expect(bobs.headers[AuthHeader.replayed] == nil)
            #expect(bobs.json?["id"]?.stringValue != id)

            #expect(try await fixture.store.jobs(userID: fixture.alice.id, filter: JobFilter(), after: nil, limit: 10).count == 1)
        }
    }

    @Test func idempotentReplaySurvivesTheWorkspaceChanging() async throws {
        try await withAPI { fixture, client in
            #expect(try await client.send(.put, "/v1/projects/app/files/a.py", as: fixture.alice, bytes: Array("x\n".utf8)).status == .created)
            let body = #"{"type":"refactor","project":"app","prompt":"p","files":["a.py"]}"#
            let key: HTTPFields = [AuthHeader.idempotencyKey: "retry-me"]
            let first = try await client.submit(body, as: fixture.alice, headers: key)
            #expect(first.status == .accepted)
            #expect(try await client.send(.delete, "/v1/projects/app/files/a.py", as: fixture.alice).status == .noContent)
            // The file is gone, but a retry of the same submission still answers with the original job.
            let retry = try await client.submit(body, as: fixture.alice, headers: key)
            #expect(retry.status == .accepted, "\(retry)")
            #expect(retry.json?["id"] == first.json?["id"])
            #expect(retry.headers[AuthHeader.replayed] == "true")
            // Without the key the same body is judged afresh: the file is missing.
            expectError(try await client.submit(body, as: fixture.alice), .notFound, .fileAccess)
        }
    }

    @Test func badIdempotencyKeysAreRefused() async throws {
        try await withAPI { fixture, client in
            let body = #"{"type":"generate","project":"app","prompt":"once"}"#
            for key in ["", "has space", String(repeating: "k", count: 256), "tab\there"] {
                let response = try await client.submit(body, as: fixture.alice, headers: [AuthHeader.idempotencyKey: key])
                expectError(response, .badRequest, .invalidRequest, field: "Idempotency-Key")
            }
            let longest = try await client.submit(body, as: fixture.alice, headers: [AuthHeader.idempotencyKey: String(repeating: "k", count: 255)])
            #expect(longest.status == .accepted, "\(longest)")
        }
    }
}
