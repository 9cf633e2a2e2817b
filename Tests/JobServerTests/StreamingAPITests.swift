import AsyncHTTPClient
import Foundation
import JobServer
import Queue
import TestSupport
import Testing

/// The WebSocket and SSE streams against a live in-process server and a real SQLite store,
/// with the store written directly in place of a worker (the end-to-end suite runs the real one).
@Suite(.timeLimit(.minutes(1)))
struct StreamingAPITests {
    static func submit(_ fixture: APIFixture, _ baseURL: String, as user: APITestUser = Self.placeholder) async throws -> String {
        var request = HTTPClientRequest(url: baseURL + "/v1/jobs")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(user.secret)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(.init(string: #"{"type":"generate","project":"app","prompt":"p"}"#))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        try #require(response.status.code == 202, "submit answered \(response.status)")
        return try #require(JSONValue.parse(String(buffer: body))?["id"]?.stringValue)
    }

    static let placeholder = APITestUser(user: User(id: UserID(rawValue: "usr_none"), name: "none", createdAt: Date()), secret: "", tokenID: "")

    static func bearer(_ user: APITestUser) -> [String: String] { ["Authorization": "Bearer \(user.secret)"] }

    // MARK: - /v1/jobs/{id}/stream

    @Test func replaysThenFollowsLiveEventsThenEndsWithTheFinalJob() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let worker = FakeWorker(store: fixture.store)
            let job = try await worker.claim(id)
            try await worker.emit(job, 1...3)
            let (messages, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/jobs/\(id)/stream"), headers: Self.bearer(fixture.alice)
            ) { socket in
                var received = try await socket.receive(until: { $0.streamSeq == 3 })
                // Live: written after the client caught up.
                try await worker.emit(job, 4...5)
                received += try await socket.receive(until: { $0.streamSeq == 5 })
                try await worker.succeed(job)
                received += try await socket.receiveAll()
                return received
            }
            #expect(seqs(messages) == [1, 2, 3, 4, 5])
            #expect(messages.dropLast().allSatisfy { $0["job_id"]?.stringValue == id && $0["type"]?.stringValue == "output" })
            #expect(messages.first?["data"]?["n"]?.intValue == 1)
            let end = try #require(messages.last)
            #expect(end.controlType == "end")
            #expect(end["job"]?["status"]?.stringValue == "succeeded")
            #expect(end["job"]?["last_event_seq"]?.intValue == 5)
            #expect(close?.code == 1000)
            // The same seqs and data as the JSON page.
            let page = try await fixture.store.events(of: job, after: 0, limit: 100)
            #expect(page.map { Int($0.seq) } == seqs(messages))
        }
    }

    @Test func afterParameterAndRewindRestartTheStream() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let worker = FakeWorker(store: fixture.store)
            let job = try await worker.claim(id)
            try await worker.emit(job, 1...4)
            let (messages, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/jobs/\(id)/stream?after=2"), headers: Self.bearer(fixture.alice)
            ) { socket in
                var received = try await socket.receive(until: { $0.streamSeq == 4 })
                try await socket.send(["after": 1])
                received += try await socket.receive(until: { $0.controlType == "rewound" })
                received += try await socket.receive(until: { $0.streamSeq == 4 })
                try await worker.succeed(job)
                received += try await socket.receiveAll()
                return received
            }
            #expect(seqs(messages) == [3, 4, 2, 3, 4])
            #expect(messages.first { $0.controlType == "rewound" }?["after"]?.intValue == 1)
            #expect(messages.last?.controlType == "end")
            #expect(close?.code == 1000)
        }
    }

    @Test func aFinishedJobIsReplayedInFull() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let worker = FakeWorker(store: fixture.store)
            let job = try await worker.claim(id)
            try await worker.emit(job, 1...600)  // more than one store page
            try await worker.succeed(job)
            let (messages, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/jobs/\(id)/stream"), headers: Self.bearer(fixture.alice)
            ) { socket in try await socket.receiveAll() }
            #expect(seqs(messages) == Array(1...600))
            #expect(messages.last?["job"]?["status"]?.stringValue == "succeeded")
            #expect(close?.code == 1000)
        }
    }

    // MARK: - Authentication

    @Test func tokenIsAcceptedFromHeaderSubprotocolOrQuery() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            _ = try await fixture.store.requestCancel(JobID(rawValue: id)!, userID: nil)  // ends at once
            let path = "/v1/jobs/\(id)/stream"
            let secret = fixture.alice.secret
            let ways: [(String, [String], [String: String])] = [
                (path, [], ["Authorization": "Bearer \(secret)"]),
                (path, [], ["x-api-key": secret]),
                (path, ["jobserver.v1", "bearer.\(secret)"], [:]),
                (path + "?token=\(secret)", [], [:]),
            ]
            for (path, protocols, headers) in ways {
                let (messages, close) = try await WebSocketTestClient.connect(
                    WebSocketTestClient.url(base, path), protocols: protocols, headers: headers
                ) { socket in try await socket.receiveAll() }
                #expect(messages.last?["job"]?["status"]?.stringValue == "cancelled", "\(path) \(protocols) \(headers.keys)")
                #expect(close?.code == 1000)
            }
        }
    }

    @Test func subprotocolAnswerIsJobserverV1AndNeverTheToken() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let (headers, _) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/jobs/\(id)/stream"), protocols: ["jobserver.v1", "bearer.\(fixture.alice.secret)"]
            ) { socket in socket.handshakeHeaders.map { "\($0.0): \($0.1)" } }
            #expect(headers.contains("sec-websocket-protocol: jobserver.v1"), "\(headers)")
            #expect(!headers.joined().contains(fixture.alice.secret))
        }
    }

    @Test func missingBadOrAmbiguousTokensCloseWith4011AndNoData() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let url = WebSocketTestClient.url(base, "/v1/jobs/\(id)/stream")
            let attempts: [([String], [String: String], String)] = [
                ([], [:], ""),
                (["jobserver.v1", "bearer.js_wrong"], [:], ""),
                ([], ["Authorization": "Basic abc"], "?token=\(fixture.alice.secret)"),
                ([], ["Authorization": "Bearer \(fixture.bob.secret)"], "?token=\(fixture.alice.secret)"),
            ]
            for (protocols, headers, query) in attempts {
                let (messages, close) = try await WebSocketTestClient.connect(url + query, protocols: protocols, headers: headers) { socket in
                    try await socket.receiveAll()
                }
                #expect(messages.isEmpty)
                #expect(close?.code == 4011, "\(String(describing: close))")
                #expect(close?.envelope?["error"]?["code"]?.stringValue == "E011")
            }
            // The same on /v1/stream.
            let (messages, close) = try await WebSocketTestClient.connect(WebSocketTestClient.url(base, "/v1/stream")) { socket in
                try await socket.receiveAll()
            }
            #expect(messages.isEmpty && close?.code == 4011)
        }
    }

    @Test func anotherUsersJobOrAMalformedIdClosesWith4013AndNoData() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let worker = FakeWorker(store: fixture.store)
            try await worker.emit(try await worker.claim(id), 1...3)
            for path in ["/v1/jobs/\(id)/stream", "/v1/jobs/job_nonsense/stream"] {
                let (messages, close) = try await WebSocketTestClient.connect(
                    WebSocketTestClient.url(base, path), protocols: ["jobserver.v1", "bearer.\(fixture.bob.secret)"]
                ) { socket in try await socket.receiveAll() }
                #expect(messages.isEmpty, "\(path): \(messages)")
                #expect(close?.code == 4013, "\(path): \(String(describing: close))")
                let error = close?.envelope?["error"]
                #expect(error?["code"]?.stringValue == "E013" && error?["name"]?.stringValue == "NOT_FOUND")
            }
        }
    }

    // MARK: - Protocol errors

    @Test func protocolErrorsCloseWith4003AndTheEnvelope() async throws {
        try await withStreamingAPI { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let cases: [(String, String)] = [
                ("/v1/jobs/\(id)/stream", "not json"),
                ("/v1/jobs/\(id)/stream", #"{"after": -1}"#),
                ("/v1/jobs/\(id)/stream", #"{"action": "submit"}"#),
                ("/v1/stream", #"{"action": "dance"}"#),
                ("/v1/stream", #"{"action": "subscribe"}"#),
                ("/v1/stream", "[1, 2]"),
            ]
            for (path, text) in cases {
                let (_, close) = try await WebSocketTestClient.connect(WebSocketTestClient.url(base, path), headers: Self.bearer(fixture.alice)) { socket in
                    try await socket.send(text: text)
                    return try await socket.receive(until: { _ in false }).count
                }
                #expect(close?.code == 4003, "\(path) \(text): \(String(describing: close))")
                #expect(close?.envelope?["error"]?["code"]?.stringValue == "E003")
                #expect((close?.reason?.utf8.count ?? 999) <= 123)
            }
            let (_, badAfter) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/jobs/\(id)/stream?after=minus"), headers: Self.bearer(fixture.alice)
            ) { socket in try await socket.receiveAll() }
            #expect(badAfter?.code == 4003)
        }
    }

    @Test func plainGetOnAWebSocketRouteIs426() async throws {
        try await withAPI { fixture, client in
            for path in ["/v1/stream", "/v1/jobs/job_x/stream"] {
                let response = try await client.send(.get, path, as: fixture.alice)
                expectError(response, .upgradeRequired, .invalidRequest)
                #expect(response.headers[.upgrade] == "websocket")
            }
        }
    }

    // MARK: - Slow consumers and idle sockets

    @Test func aClientThatStopsReadingIsClosedWith4008AndResumesBySeq() async throws {
        let streaming = StreamingConfiguration(
            queueMessages: 16, queueBytes: 64 << 10, heartbeat: .seconds(600), socketSendBufferBytes: 16 << 10)
        try await withStreamingAPI(streaming: streaming) { fixture, base in
            let id = try await Self.submit(fixture, base, as: fixture.alice)
            let worker = FakeWorker(store: fixture.store)
            let job = try await worker.claim(id)
            try await worker.emit(job, 1...1)
            let url = WebSocketTestClient.url(base, "/v1/jobs/\(id)/stream")
            let total = 600
            let (first, close) = try await WebSocketTestClient.connect(
                url, headers: Self.bearer(fixture.alice), receiveBufferBytes: 4096
            ) { socket in
                var received = try await socket.receive(until: { $0.streamSeq == 1 })  // caught up: live from here
                // Far more live output than the socket buffers and the 16-message queue hold,
                // while the client reads nothing.
                for start in stride(from: 2, through: total, by: 100) {
                    try await worker.emit(job, start...min(total, start + 99), padding: 4000)
                }
                try await worker.succeed(job)
                received += try await socket.receiveAll()
                return received
            }
            #expect(close?.code == 4008, "\(String(describing: close))")
            #expect(close?.envelope?["error"]?["code"]?.stringValue == "E008")
            let got = seqs(first)
            #expect(got == Array(1...(got.last ?? 1)), "a prefix, in order (\(got.count) events)")
            #expect((got.last ?? 0) < total)
            let last = got.last ?? 0
            let (rest, restClose) = try await WebSocketTestClient.connect(url + "?after=\(last)", headers: Self.bearer(fixture.alice)) { socket in
                try await socket.receiveAll()
            }
            let all = got + seqs(rest)
            #expect(all.count == total && all == Array(1...total), "\(all.count) events, \(Set(all).count) distinct")
            #expect(rest.last?.controlType == "end", "resumed after \(last): \(rest.count) messages, seqs \(seqs(rest).first ?? -1)...\(seqs(rest).last ?? -1)")
            #expect(restClose?.code == 1000)
        }
    }

    @Test func aSocketFollowingNothingIsClosedWhenIdle() async throws {
        let streaming = StreamingConfiguration(idleTimeout: .milliseconds(300))
        try await withStreamingAPI(streaming: streaming) { fixture, base in
            let (messages, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/stream"), headers: Self.bearer(fixture.alice)
            ) { socket in try await socket.receiveAll() }
            #expect(messages.isEmpty)
            #expect(close?.code == 4001)
            #expect(close?.envelope?["error"]?["details"]?["limit"]?.stringValue == "idle")
        }
    }
}
