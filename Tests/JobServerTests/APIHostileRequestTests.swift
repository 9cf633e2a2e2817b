import Foundation
import HTTPTypes
import HummingbirdTesting
import JobServer
import NIOCore
import Queue
import TestSupport
import Testing

/// No request, however hostile, gets a 5xx answer.
extension APIValidationTests {
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
                // (A valid event-stream request streams until the job ends: only bad resume points here.)
                HostileRequest(.get, "/v1/jobs/\(id)/events", nil, [.accept: "text/event-stream", HTTPField.Name("Last-Event-ID")!: "99999999999999999999"]),
                HostileRequest(.get, "/v1/jobs/\(id)/events?after=-5", nil, [.accept: "text/event-stream"]),
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
