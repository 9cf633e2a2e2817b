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

    // MARK: - Reading, isolation

    @Test func anotherUsersJobIsNotFound() async throws {
        try await withAPI { fixture, client in
            let id = try await client.submitJob(as: fixture.alice)
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/jobs/\(id)"), (.post, "/v1/jobs/\(id)/cancel"), (.get, "/v1/jobs/\(id)/events")] {
                let response = try await client.send(method, uri, as: fixture.bob)
                expectError(response, .notFound, .notFound)
                #expect(!response.text.contains(fixture.alice.user.name), "\(response)")
            }
            let list = try await client.send(.get, "/v1/jobs", as: fixture.bob)
            #expect(list.json?["jobs"] == .array([]))
            // Bob's cancel attempt did nothing.
            #expect(try await client.send(.get, "/v1/jobs/\(id)", as: fixture.alice).json?["status"] == .string("queued"))
        }
    }

    @Test func malformedJobIDsAreNotFound() async throws {
        try await withAPI { fixture, client in
            let ids = ["nope", "job_", "job_0000000000000000000000000U", "job_\(String(repeating: "0", count: 27))",
                       "JOB_01jd8q3x0v5k2m9n4p6r8s0t2w", "%00", "job_01jd8q3x0v5k2m9n4p6r8s0t2%77", "job_00000000000000000000000000"]
            for id in ids {
                expectError(try await client.send(.get, "/v1/jobs/\(id)", as: fixture.alice), .notFound, .notFound)
                expectError(try await client.send(.post, "/v1/jobs/\(id)/cancel", as: fixture.alice), .notFound, .notFound)
                expectError(try await client.send(.get, "/v1/jobs/\(id)/events", as: fixture.alice), .notFound, .notFound)
            }
        }
    }

    // MARK: - Listing

    @Test func listRejectsBadParameters() async throws {
        try await withAPI { fixture, client in
            let cases: [(String, String)] = [
                ("status=bogus", "status"), ("status=", "status"), ("type=deploy", "type"),
                ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
                ("limit=99999999999999999999999", "limit"), ("limit=-1", "limit"), ("limit=1.5", "limit"),
                ("cursor=zzz", "cursor"), ("cursor=", "cursor"),
            ]
            for (query, field) in cases {
                let response = try await client.send(.get, "/v1/jobs?\(query)", as: fixture.alice)
                expectError(response, .badRequest, .invalidRequest, field: field)
            }
            let project = try await client.send(.get, "/v1/jobs?project=.hidden", as: fixture.alice)
            expectError(project, .badRequest, .invalidRequest)
            #expect(project.errorDetails?["project"] == .string(".hidden"))
        }
    }

    @Test func listPagesWithCursor() async throws {
        try await withAPI { fixture, client in
            var submitted: [String] = []
            for index in 0..<5 {
                submitted.append(try await client.submitJob(as: fixture.alice, project: index % 2 == 0 ? "even" : "odd", prompt: "job \(index)"))
            }
            _ = try await client.submitJob(as: fixture.bob)

            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let uri = "/v1/jobs?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let response = try await client.send(.get, uri, as: fixture.alice)
                #expect(response.status == .ok, "\(response)")
                let jobs = try #require(response.json?["jobs"]?.arrayValue)
                #expect(jobs.count <= 2)
                seen += jobs.compactMap { $0["id"]?.stringValue }
                cursor = response.json?["next_cursor"]?.stringValue
                if cursor == nil { #expect(response.json?["next_cursor"] == .null) }
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen.count == 5)
            #expect(Set(seen) == Set(submitted))
            #expect(seen == seen.sorted(by: >), "newest first")

            let all = try await client.send(.get, "/v1/jobs", as: fixture.alice)
            #expect(all.json?["jobs"]?.arrayValue?.count == 5)
            #expect(all.json?["next_cursor"] == .null)

            let even = try await client.send(.get, "/v1/jobs?project=even", as: fixture.alice)
            #expect(even.json?["jobs"]?.arrayValue?.count == 3)
            let kinds = try await client.send(.get, "/v1/jobs?type=review", as: fixture.alice)
            #expect(kinds.json?["jobs"]?.arrayValue?.isEmpty == true)

            let cancelled = try await client.send(.post, "/v1/jobs/\(submitted[1])/cancel", as: fixture.alice)
            #expect(cancelled.status == .ok)
            let onlyCancelled = try await client.send(.get, "/v1/jobs?status=cancelled", as: fixture.alice)
            #expect(onlyCancelled.json?["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [submitted[1]])
            let queued = try await client.send(.get, "/v1/jobs?status=queued&limit=100", as: fixture.alice)
            #expect(queued.json?["jobs"]?.arrayValue?.count == 4)
        }
    }

    // MARK: - Cancelling

    @Test func cancellingAQueuedJobCancelsItAndIsRepeatable() async throws {
        try await withAPI { fixture, client in
            let id = try await client.submitJob(as: fixture.alice)
            let first = try await client.send(.post, "/v1/jobs/\(id)/cancel", as: fixture.alice)
            #expect(first.status == .ok, "\(first)")
            #expect(first.json?["status"] == .string("cancelled"))
            #expect(first.json?["error"]?["code"] == .string("E007"))
            #expect(first.json?["error"]?["name"] == .string("CANCELLED"))
            #expect(first.json?["error"]?["retryable"] == .bool(false))
            #expect(first.json?["finished_at"]?.stringValue != nil)

            let second = try await client.send(.post, "/v1/jobs/\(id)/cancel", as: fixture.alice)
            #expect(second.status == .ok, "\(second)")
            #expect(second.json?["status"] == .string("cancelled"))
            #expect(second.json?["finished_at"] == first.json?["finished_at"])

            let read = try await client.send(.get, "/v1/jobs/\(id)", as: fixture.alice)
            #expect(read.json?["status"] == .string("cancelled"))
            #expect(read.json?["queue_position"] == nil)
        }
    }

    @Test func cancellingRunningAndFinishedJobs() async throws {
        try await withAPI { fixture, client in
            let running = try await client.submitJob(as: fixture.alice, prompt: "running")
            let claimed = try #require(try await fixture.store.claim(owner: "worker-1", lease: .seconds(60)))
            #expect(claimed.id.rawValue == running)
            let flagged = try await client.send(.post, "/v1/jobs/\(running)/cancel", as: fixture.alice)
            #expect(flagged.status == .accepted, "\(flagged)")
            #expect(flagged.json?["status"] == .string("running"))
            #expect(flagged.json?["cancel_requested"] == .bool(true))

            let done = try await client.submitJob(as: fixture.alice, prompt: "done")
            let second = try #require(try await fixture.store.claim(owner: "worker-1", lease: .seconds(60)))
            #expect(second.id.rawValue == done)
            try await fixture.store.complete(second.id, owner: "worker-1", with: .succeeded(result: .object(["text": .string("ok")]), metrics: nil))
            let refused = try await client.send(.post, "/v1/jobs/\(done)/cancel", as: fixture.alice)
            expectError(refused, .conflict, .conflict)
            #expect(refused.errorDetails?["status"] == .string("succeeded"))
            let read = try await client.send(.get, "/v1/jobs/\(done)", as: fixture.alice)
            #expect(read.json?["status"] == .string("succeeded"))
            #expect(read.json?["result"]?["text"] == .string("ok"))
        }
    }

    // MARK: - Events

    @Test func eventsArePaged() async throws {
        try await withAPI { fixture, client in
            let id = try await client.submitJob(as: fixture.alice)
            let empty = try await client.send(.get, "/v1/jobs/\(id)/events", as: fixture.alice)
            #expect(empty.status == .ok, "\(empty)")
            #expect(empty.json?["job_id"] == .string(id))
            #expect(empty.json?["status"] == .string("queued"))
            #expect(empty.json?["events"] == .array([]))
            #expect(empty.json?["next_after"]?.intValue == 0)
            #expect(empty.json?["done"] == .bool(false))

            let job = try #require(try await fixture.store.claim(owner: "w", lease: .seconds(60)))
            let last = try await fixture.store.appendEvents(job.id, owner: "w", [
                NewEvent(type: "log", data: #"{"n":1}"#),
                NewEvent(type: "assistant", data: #"{"text":"hi \"there\""}"#),
                NewEvent(type: "log", data: #"[1,2,3]"#),
            ])
            #expect(last == 3)

            let page = try await client.send(.get, "/v1/jobs/\(id)/events", as: fixture.alice)
            let events = try #require(page.json?["events"]?.arrayValue)
            #expect(events.compactMap { $0["seq"]?.intValue } == [1, 2, 3])
            #expect(events.map { $0["type"] } == [.string("log"), .string("assistant"), .string("log")])
            #expect(events[0]["data"] == .object(["n": .number(1)]))
            #expect(events[1]["data"]?["text"] == .string("hi \"there\""))
            #expect(events.allSatisfy { $0["time"]?.stringValue != nil })
            #expect(page.json?["next_after"]?.intValue == 3)
            #expect(page.json?["status"] == .string("running"))
            #expect(page.json?["done"] == .bool(false))

            let limited = try await client.send(.get, "/v1/jobs/\(id)/events?limit=1", as: fixture.alice)
            #expect(limited.json?["events"]?.arrayValue?.count == 1)
            #expect(limited.json?["next_after"]?.intValue == 1)
            let after = try await client.send(.get, "/v1/jobs/\(id)/events?after=2", as: fixture.alice)
            #expect(after.json?["events"]?.arrayValue?.compactMap { $0["seq"]?.intValue } == [3])

            try await fixture.store.complete(job.id, owner: "w", with: .succeeded(result: nil, metrics: nil))
            let partial = try await client.send(.get, "/v1/jobs/\(id)/events?after=1&limit=1", as: fixture.alice)
            #expect(partial.json?["next_after"]?.intValue == 2)
            #expect(partial.json?["done"] == .bool(false), "events remain after seq 2")
            let final = try await client.send(.get, "/v1/jobs/\(id)/events?after=3", as: fixture.alice)
            #expect(final.json?["done"] == .bool(true))
            #expect(final.json?["status"] == .string("succeeded"))

            for (query, field) in [("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit"), ("limit=1001", "limit")] {
                expectError(try await client.send(.get, "/v1/jobs/\(id)/events?\(query)", as: fixture.alice),
                            .badRequest, .invalidRequest, field: field)
            }
        }
    }

    // MARK: - Unknown routes

    @Test func unknownRoutesAnswerTheEnvelope() async throws {
        try await withAPI { fixture, client in
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/nope"), (.get, "/nope"), (.post, "/v2/jobs"),
                                  (.delete, "/v1/jobs"), (.put, "/v1/jobs"), (.get, "/v1/projects/app/archive/x"), (.patch, "/healthz")] {
                expectError(try await client.send(method, uri, as: fixture.alice), .notFound, .notFound)
                expectError(try await client.send(method, uri), .notFound, .notFound)
            }
        }
    }

    // MARK: - Files

    @Test func fileRoundTrip() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            let content = Array("print('hello')\n".utf8)
            let created = try await client.send(.put, "/v1/projects/app/files/src/main.py", as: alice, bytes: content)
            #expect(created.status == .created, "\(created)")
            #expect(created.json == .object(["project": .string("app"), "path": .string("src/main.py"), "bytes": .number(Double(content.count))]))
            let replaced = try await client.send(.put, "/v1/projects/app/files/src/main.py", as: alice, bytes: Array("v2\n".utf8))
            #expect(replaced.status == .ok, "\(replaced)")
            #expect(replaced.json?["bytes"]?.intValue == 3)
            #expect(try await client.send(.put, "/v1/projects/app/files/README.md", as: alice, bytes: []).status == .created)

            let read = try await client.send(.get, "/v1/projects/app/files/src/main.py", as: alice)
            #expect(read.status == .ok)
            #expect(read.headers[.contentType] == "application/octet-stream")
            #expect(read.bytes == Array("v2\n".utf8))
            // A percent-encoded slash names the same file.
            #expect(try await client.send(.get, "/v1/projects/app/files/src%2Fmain.py", as: alice).bytes == Array("v2\n".utf8))

            let list = try await client.send(.get, "/v1/projects/app/files", as: alice)
            #expect(list.status == .ok)
            #expect(list.json?["project"] == .string("app"))
            let files = try #require(list.json?["files"]?.arrayValue)
            #expect(files.compactMap { $0["path"]?.stringValue } == ["README.md", "src/main.py"])
            #expect(files.compactMap { $0["bytes"]?.intValue } == [0, 3])
            #expect(files.allSatisfy { $0["modified_at"] != nil && $0["modified_at"] != .null })

            let projects = try await client.send(.get, "/v1/projects", as: alice)
            #expect(projects.json == .object(["projects": .array([.object(["name": .string("app")])])]))

            let deleted = try await client.send(.delete, "/v1/projects/app/files/src/main.py", as: alice)
            #expect(deleted.status == .noContent)
            #expect(deleted.body.readableBytes == 0)
            expectError(try await client.send(.get, "/v1/projects/app/files/src/main.py", as: alice), .notFound, .notFound)
            expectError(try await client.send(.delete, "/v1/projects/app/files/src/main.py", as: alice), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/nothing/files", as: alice), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/nothing/files/a.txt", as: alice), .notFound, .notFound)
            // The file is gone from disk too.
            let onDisk = try fixture.workspaces.projectPath(user: alice.id, project: ProjectName(validating: "app")) + "/src/main.py"
            #expect(!FileManager.default.fileExists(atPath: onDisk))
        }
    }

    @Test func fileAndDirectoryClashesAreFileAccessErrors() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            #expect(try await client.send(.put, "/v1/projects/app/files/a", as: alice, bytes: [1]).status == .created)
            expectError(try await client.send(.put, "/v1/projects/app/files/a/b", as: alice, bytes: [2]), .badRequest, .fileAccess)
            #expect(try await client.send(.put, "/v1/projects/app/files/d/f", as: alice, bytes: [3]).status == .created)
            expectError(try await client.send(.put, "/v1/projects/app/files/d", as: alice, bytes: [4]), .badRequest, .fileAccess)
            let readDirectory = try await client.send(.get, "/v1/projects/app/files/d", as: alice)
            #expect(readDirectory.status.code < 500 && readDirectory.errorCode != nil, "\(readDirectory)")
            let deleteDirectory = try await client.send(.delete, "/v1/projects/app/files/d", as: alice)
            #expect(deleteDirectory.status.code < 500 && deleteDirectory.errorCode != nil, "\(deleteDirectory)")
            #expect(try await client.send(.get, "/v1/projects/app/files/d/f", as: alice).bytes == [3])
        }
    }

    @Test func traversalIsRefusedWithoutTouchingTheDisk() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            #expect(try await client.send(.put, "/v1/projects/app/files/keep.txt", as: alice, bytes: Array("keep".utf8)).status == .created)
            let before = fixture.workspaceTree()
            let directoryBefore = try FileManager.default.contentsOfDirectory(atPath: fixture.directory).sorted()
            let hostile = [
                "%2e%2e/x", "a/%2e%2e/%2e%2e/etc/passwd", "%2E%2E/%2E%2E/x", "..%2Fx", "a/..%2f..%2fx", "%2Fetc%2Fpasswd",
                "..", "a/../../x", ".", "a/./b", "a%00b", "%00", "a%5Cb", "a%0Ab", String(repeating: "n", count: 256),
                "%2e%2e", "..%2F..%2F..%2Fjobs.sqlite",
            ]
            for path in hostile {
                for method in [HTTPRequest.Method.put, .get, .delete] {
                    let response = try await client.send(method, "/v1/projects/app/files/\(path)", as: alice,
                                                         bytes: method == .put ? Array("pwned".utf8) : nil)
                    expectError(response, .badRequest, .fileAccess)
                    #expect(response.errorDetails?["path"]?.stringValue != nil, "\(method) \(path): \(response)")
                }
            }
            // Bad project names on the file routes are E003.
            for project in [".hidden", "%2e%2e", "..", "a%2Fb", String(repeating: "p", count: 65)] {
                expectError(try await client.send(.put, "/v1/projects/\(project)/files/x", as: alice, bytes: [1]),
                            .badRequest, .invalidRequest)
                expectError(try await client.send(.get, "/v1/projects/\(project)/files", as: alice), .badRequest, .invalidRequest)
                expectError(try await client.send(.get, "/v1/projects/\(project)/archive", as: alice), .badRequest, .invalidRequest)
            }
            #expect(fixture.workspaceTree() == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory).sorted() == directoryBefore)
            #expect(try await client.send(.get, "/v1/projects/app/files/keep.txt", as: alice).bytes == Array("keep".utf8))
        }
    }

    @Test func anotherUsersProjectIsInvisible() async throws {
        try await withAPI { fixture, client in
            #expect(try await client.send(.put, "/v1/projects/secret/files/plan.txt", as: fixture.alice, bytes: Array("alice".utf8)).status == .created)
            let bob = fixture.bob
            expectError(try await client.send(.get, "/v1/projects/secret/files/plan.txt", as: bob), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/secret/files", as: bob), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/secret/archive", as: bob), .notFound, .notFound)
            expectError(try await client.send(.delete, "/v1/projects/secret/files/plan.txt", as: bob), .notFound, .notFound)
            #expect(try await client.send(.get, "/v1/projects", as: bob).json == .object(["projects": .array([])]))
            // Bob's project of the same name is his own.
            #expect(try await client.send(.put, "/v1/projects/secret/files/plan.txt", as: bob, bytes: Array("bob".utf8)).status == .created)
            #expect(try await client.send(.get, "/v1/projects/secret/files/plan.txt", as: bob).bytes == Array("bob".utf8))
            #expect(try await client.send(.get, "/v1/projects/secret/files/plan.txt", as: fixture.alice).bytes == Array("alice".utf8))
        }
    }

    @Test func oversizedFilesAre413() async throws {
        let limits = WorkspaceLimits(maxFileBytes: 1024, maxFilesPerProject: 3, maxProjectBytes: 2500)
        try await withAPI(limits: limits) { fixture, client in
            let alice = fixture.alice
            let tooBig = try await client.send(.put, "/v1/projects/app/files/big.bin", as: alice, bytes: Array(repeating: 7, count: 1025))
            expectError(tooBig, .contentTooLarge, .fileAccess)
            #expect(tooBig.errorDetails?["limit"]?.intValue == 1024)
            #expect(try await client.send(.put, "/v1/projects/app/files/a.bin", as: alice, bytes: Array(repeating: 1, count: 1024)).status == .created)
            #expect(try await client.send(.put, "/v1/projects/app/files/b.bin", as: alice, bytes: Array(repeating: 2, count: 1024)).status == .created)
            // Past the project's byte quota: E008.
            let quota = try await client.send(.put, "/v1/projects/app/files/c.bin", as: alice, bytes: Array(repeating: 3, count: 1000))
            expectError(quota, .contentTooLarge, .resourceLimit)
            #expect(quota.errorDetails?["limit"]?.intValue == 2500)
            #expect(try await client.send(.put, "/v1/projects/app/files/c.bin", as: alice, bytes: [3]).status == .created)
            // Past the file-count quota: E008.
            expectError(try await client.send(.put, "/v1/projects/app/files/d.bin", as: alice, bytes: [4]), .contentTooLarge, .resourceLimit)
            let listed = try await client.send(.get, "/v1/projects/app/files", as: alice)
            #expect(listed.json?["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["a.bin", "b.bin", "c.bin"])
        }
    }

    // MARK: - Archives

    @Test func garbageArchivesAreRefusedAndLeaveTheProjectAlone() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            #expect(try await client.send(.put, "/v1/projects/app/files/keep.txt", as: alice, bytes: Array("keep".utf8)).status == .created)
            let garbage: [[UInt8]] = [
                Array("this is not a gzip stream".utf8),
                [],
                [0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00],  // a truncated gzip header
            ]
            for bytes in garbage {
                let response = try await client.send(.put, "/v1/projects/app/archive", as: alice, bytes: bytes, contentType: "application/gzip")
                expectError(response, .badRequest, .fileAccess)
            }
            // A gzip of something that is not a tar.
            try await withTemporaryDirectory(prefix: "api-archive-") { scratch in
                try Data("plain text, not a tar archive\n".utf8).write(to: URL(fileURLWithPath: scratch + "/notes.txt"))
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", "gzip -c notes.txt > notes.gz"]
                process.currentDirectoryURL = URL(fileURLWithPath: scratch)
                try process.run()
                process.waitUntilExit()
                #expect(process.terminationStatus == 0)
                let gz = try [UInt8](Data(contentsOf: URL(fileURLWithPath: scratch + "/notes.gz")))
                expectError(try await client.send(.put, "/v1/projects/app/archive", as: alice, bytes: gz), .badRequest, .fileAccess)

                // An archive holding a symbolic link is refused.
                try FileManager.default.createDirectory(atPath: scratch + "/tree", withIntermediateDirectories: true)
                try FileManager.default.createSymbolicLink(atPath: scratch + "/tree/link", withDestinationPath: "/etc/passwd")
                let linked = try runTar(["czf", "-", "-C", scratch + "/tree", "link"], in: scratch)
                expectError(try await client.send(.put, "/v1/projects/app/archive", as: alice, bytes: linked), .badRequest, .fileAccess)
            }
            let listed = try await client.send(.get, "/v1/projects/app/files", as: alice)
            #expect(listed.json?["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["keep.txt"])
            // A refused upload does not create a project either.
            expectError(try await client.send(.put, "/v1/projects/fresh/archive", as: alice, bytes: Array("junk".utf8)), .badRequest, .fileAccess)
            expectError(try await client.send(.get, "/v1/projects/fresh/files", as: alice), .notFound, .notFound)
        }
    }

    @Test func archiveRoundTrip() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            try await withTemporaryDirectory(prefix: "api-archive-") { scratch in
                let source = scratch + "/source"
                try FileManager.default.createDirectory(atPath: source + "/src/lib", withIntermediateDirectories: true)
                try Data("# Demo\n".utf8).write(to: URL(fileURLWithPath: source + "/README.md"))
                try Data("def pay(): pass\n".utf8).write(to: URL(fileURLWithPath: source + "/src/pay.py"))
                try Data("X = 1\n".utf8).write(to: URL(fileURLWithPath: source + "/src/lib/util.py"))
                let archive = try runTar(["czf", "-", "-C", source, "README.md", "src"], in: scratch)

                #expect(try await client.send(.put, "/v1/projects/demo/files/old.txt", as: alice, bytes: [1]).status == .created)
                let upload = try await client.send(.put, "/v1/projects/demo/archive", as: alice, bytes: archive, contentType: "application/gzip")
                #expect(upload.status == .ok, "\(upload)")
                #expect(upload.json?["project"] == .string("demo"))
                #expect(upload.json?["files"]?.intValue == 3)
                #expect(upload.json?["directories"]?.intValue == 2)
                #expect(upload.json?["bytes"]?.intValue == 7 + 16 + 6)

                // The archive replaced the project.
                let listed = try await client.send(.get, "/v1/projects/demo/files", as: alice)
                #expect(listed.json?["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["README.md", "src/lib/util.py", "src/pay.py"])
                #expect(try await client.send(.get, "/v1/projects/demo/files/src/pay.py", as: alice).bytes == Array("def pay(): pass\n".utf8))

                let download = try await client.send(.get, "/v1/projects/demo/archive", as: alice)
                #expect(download.status == .ok)
                #expect(download.headers[.contentType] == "application/gzip")
                #expect(download.headers[.contentDisposition] == #"attachment; filename="demo.tar.gz""#)
                #expect(download.bytes.starts(with: [0x1F, 0x8B]))
                try Data(download.bytes).write(to: URL(fileURLWithPath: scratch + "/down.tar.gz"))
                let names = String(decoding: try runTar(["tzf", "down.tar.gz"], in: scratch), as: UTF8.self)
                    .split(separator: "\n").map { $0.hasSuffix("/") ? String($0.dropLast()) : String($0) }
                #expect(Set(names) == ["README.md", "src", "src/lib", "src/lib/util.py", "src/pay.py"])
                try FileManager.default.createDirectory(atPath: scratch + "/out", withIntermediateDirectories: true)
                try runTar(["xzf", "../down.tar.gz"], in: scratch + "/out")
                #expect(try String(contentsOfFile: scratch + "/out/src/lib/util.py", encoding: .utf8) == "X = 1\n")

                // Uploading the downloaded archive elsewhere reproduces the project.
                let copy = try await client.send(.put, "/v1/projects/copy/archive", as: alice, bytes: download.bytes)
                #expect(copy.status == .ok, "\(copy)")
                #expect(copy.json?["files"]?.intValue == 3)
                let projects = try await client.send(.get, "/v1/projects", as: alice)
                #expect(projects.json?["projects"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["copy", "demo"])
            }
        }
    }

    // MARK: - Probes

    @Test func probesAnswerWithoutAuthentication() async throws {
        try await withAPI { fixture, client in
            let health = try await client.send(.get, "/healthz")
            #expect(health.status == .ok)
            #expect(health.json == .object(["status": .string("ok")]))
            let ready = try await client.send(.get, "/readyz")
            #expect(ready.status == .ok)
            #expect(ready.json == .object(["status": .string("ready")]))

            _ = try await client.submitJob(as: fixture.alice)
            let metrics = try await client.send(.get, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let lines = metrics.text.split(separator: "\n").map(String.init)
            #expect(lines.contains("# TYPE jobserver_jobs gauge"))
            #expect(lines.contains(#"jobserver_jobs{status="queued"} 1"#))
            #expect(lines.contains(#"jobserver_jobs{status="running"} 0"#))
            #expect(lines.contains { $0.hasPrefix("jobserver_oldest_queued_seconds ") })
            // Every sample line is "name{labels} number".
            for line in lines where !line.hasPrefix("#") {
                let value = line.split(separator: " ").last.map(String.init) ?? ""
                #expect(Double(value) != nil, "bad sample line: \(line)")
            }
            // A token is not required but does no harm.
            #expect(try await client.send(.get, "/healthz", as: fixture.alice).status == .ok)
        }
    }

    // MARK: - Regressions found by review

    @Test func fileListingTimestampsAreRFC3339() async throws {
        try await withAPI { fixture, client in
            #expect(try await client.send(.put, "/v1/projects/app/files/a.txt", as: fixture.alice, bytes: [1]).status == .created)
            let listed = try await client.send(.get, "/v1/projects/app/files", as: fixture.alice)
            let modified = try #require(listed.json?["files"]?.arrayValue?.first?["modified_at"])
            let text = try #require(modified.stringValue, "modified_at is \(modified.jsonText())")
            #expect((try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) != nil)
        }
    }

    @Test func undecodablePercentEscapesInFilePathsAreRefused() async throws {
        try await withAPI { fixture, client in
            for path in ["%", "a%FFb", "%zz"] {
                let response = try await client.send(.put, "/v1/projects/app/files/\(path)", as: fixture.alice, bytes: [1])
                #expect(response.status.code < 500, "\(response)")
                expectError(response, .badRequest, .fileAccess)
            }
        }
    }

    @Test func contentTypeMustBeExactlyJSON() async throws {
        try await withAPI { fixture, client in
            let body = RejectedSubmission.generate("")
            let response = try await client.send(.post, "/v1/jobs", as: fixture.alice, json: body, contentType: "application/jsonp")
            #expect(response.status.code < 500, "\(response)")
            expectError(response, .unsupportedMediaType, .invalidRequest)
        }
    }

    // MARK: - No 5xx

    /// A batch of hostile requests: every answer is a well-formed envelope or a success, never 5xx.
    @Test func hostileRequestsNeverAnswer5xx() async throws {
        try await withAPI(limits: WorkspaceLimits(maxFileBytes: 4096, maxFilesPerProject: 20, maxProjectBytes: 65536)) { fixture, client in
            let alice = fixture.alice
            let id = try await client.submitJob(as: alice)
            #expect(try await client.send(.put, "/v1/projects/app/files/a/b.txt", as: alice, bytes: [1]).status == .created)
            let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
            let bodies = [
                deep, #"{"type":"generate","project":"app","prompt":"p","metadata":\#(deep)}"#,
                String(repeating: "{\"a\":", count: 5000) + "1" + String(repeating: "}", count: 5000),
                #"{"type":"generate","project":"app","prompt":"\ud800"}"#, #"{"type":"generate","project":"app","prompt":"p","priority":1e400}"#,
                #"{"type":"generate","project":"app","prompt":"p","priority":-0}"#, #"{"type":"generate","type":"review","project":"app","prompt":"p"}"#,
                #"{"type":"generate","project":"app","prompt":"p","options":{"timeout_s":9.3e18}}"#,
                #"{"type":"generate","project":"app","prompt":"p","options":{"max_turns":-9223372036854775808}}"#,
                #"{"type":"review","project":"app","prompt":"p","files":["a"]}"#, #"{"type":"review","project":"app","prompt":"p","files":["a/b.txt/c"]}"#,
                #"{"type":"generate","project":"nope","prompt":"p","files":["x"]}"#, #"{"type":"review","project":"app","prompt":"\u0000"}"#,
                #"{"":1}"#, "{}", "\u{FEFF}{}", " ", "\0",
            ]
            var requests: [HostileRequest] = bodies.map {
                HostileRequest(.post, "/v1/jobs", Array($0.utf8), [.contentType: "application/json"])
            }
            let others: [HostileRequest] = [
                HostileRequest(.post, "/v1/jobs", Array("{}".utf8), [.contentType: ""]),
                HostileRequest(.post, "/v1/jobs", Array(#"{"type":"generate","project":"app","prompt":"p"}"#.utf8), [AuthHeader.idempotencyKey: "\u{7F}"]),
                HostileRequest(.get, "/v1/jobs?limit=9223372036854775807"),
                HostileRequest(.get, "/v1/jobs?limit=%00"),
                HostileRequest(.get, "/v1/jobs?cursor=job_zzzzzzzzzzzzzzzzzzzzzzzzzz"),
                HostileRequest(.get, "/v1/jobs?status=queued&status=running"),
                HostileRequest(.get, "/v1/jobs?project=%FF"),
                HostileRequest(.get, "/v1/jobs?&&&=&"),
                HostileRequest(.get, "/v1/jobs?cursor=\(id)"),
                HostileRequest(.get, "/v1/jobs/\(id)/events?after=9223372036854775807"),
                HostileRequest(.get, "/v1/jobs/\(id)/events?after=99999999999999999999"),
                HostileRequest(.get, "/v1/jobs/\(id)/events?limit=1000&after=0"),
                HostileRequest(.get, "/v1/jobs/\(id)/events", nil, [.accept: "text/event-stream"]),
                HostileRequest(.post, "/v1/jobs/\(id)/cancel", Array("{\"garbage\"".utf8), [.contentType: "application/json"]),
                HostileRequest(.get, "/v1/jobs/\(String(repeating: "j", count: 5000))"),
                HostileRequest(.get, "/v1/jobs/%FF%FE"),
                HostileRequest(.get, "/v1/projects/app/files/a"),
                HostileRequest(.delete, "/v1/projects/app/files/a"),
                HostileRequest(.put, "/v1/projects/app/files/a", [1]),
                HostileRequest(.put, "/v1/projects/app/files/a/b.txt/c", [1]),
                HostileRequest(.put, "/v1/projects/app/files/big", Array(repeating: 0, count: 10_000)),
                HostileRequest(.get, "/v1/projects/app/files/%zz"),
                HostileRequest(.get, "/v1/projects/app/files/%FF"),
                HostileRequest(.get, "/v1/projects/app/files/%252e%252e/x"),
                HostileRequest(.get, "/v1/projects/app/files/\(String(repeating: "a/", count: 3000))x"),
                HostileRequest(.get, "/v1/projects/app/files/\(String(repeating: "c", count: 5000))"),
                HostileRequest(.put, "/v1/projects/app/archive", Array(repeating: 0, count: 2048)),
                HostileRequest(.put, "/v1/projects/app/archive", [0x1F, 0x8B, 0x08, 0x00, 0, 0, 0, 0, 0, 0xFF, 0x03, 0x00]),
                HostileRequest(.get, "/v1/projects/%FF/archive"),
                HostileRequest(.get, "/v1/projects/app/archive"),
                HostileRequest(.get, "/v1/projects/\(String(repeating: "p", count: 10_000))/files"),
                HostileRequest(.get, "//v1//jobs"),
                HostileRequest(.get, "/v1/jobs/../projects"),
                HostileRequest(.options, "/v1/jobs"),
                HostileRequest(.head, "/v1/jobs"),
                HostileRequest(.get, "/metrics?x=%00"),
                HostileRequest(.get, "/readyz"),
            ]
            requests += others
            for request in requests {
                var headers = alice.bearer
                headers.append(contentsOf: request.headers)
                let response = try await client.send(request.method, request.uri, bytes: request.body, headers: headers)
                #expect(response.status.code < 500, "\(request) → \(response)")
                if response.status.code >= 400 {
                    #expect(response.isWellFormedEnvelope, "\(request) → \(response)")
                }
            }
            // The same requests without a token: 401 (or 404 for unrouted ones, 200 for probes), never 5xx.
            for request in requests {
                let response = try await client.send(request.method, request.uri, bytes: request.body, headers: request.headers)
                #expect(response.status.code < 500, "\(request) → \(response)")
                if request.uri.hasPrefix("/v1/") && response.status.code != 404 {
                    expectError(response, .unauthorized, .unauthorized)
                }
            }
        }
    }
}

/// One request of the hostile batch.
struct HostileRequest: Sendable, CustomStringConvertible {
    var method: HTTPRequest.Method
    var uri: String
    var body: [UInt8]?
    var headers: HTTPFields

    init(_ method: HTTPRequest.Method, _ uri: String, _ body: [UInt8]? = nil, _ headers: HTTPFields = [:]) {
        self.method = method
        self.uri = uri
        self.body = body
        self.headers = headers
    }

    var description: String { "\(method) \(uri.prefix(120))" }
}

/// Header names used by the API.
enum AuthHeader {
    static let apiKey = HTTPField.Name("x-api-key")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let replayed = HTTPField.Name("Idempotent-Replayed")!
}

