import AsyncHTTPClient
import Foundation
import JobServer
import Queue
import TestSupport
import Testing

/// `/v1/stream` (submit, subscribe, cancel over one socket) and the SSE form of
/// `/v1/jobs/{id}/events`, against a live in-process server and a real SQLite store.
@Suite(.timeLimit(.minutes(1)))
struct StreamingSocketAPITests {
    static func bearer(_ user: APITestUser) -> [String: String] { ["Authorization": "Bearer \(user.secret)"] }

    // MARK: - /v1/stream

    @Test func submitOverTheSocketThenFollowSeveralJobsTaggedByID() async throws {
        try await withStreamingAPI { fixture, base in
            let worker = FakeWorker(store: fixture.store)
            let (messages, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/stream"), protocols: ["jobserver.v1", "bearer.\(fixture.alice.secret)"]
            ) { socket in
                var received: [JSONValue] = []
                var ids: [String] = []
                for (index, prompt) in ["first", "second"].enumerated() {
                    try await socket.send(["action": "submit", "request_id": .string("r\(index)"),
                                           "job": ["type": "generate", "project": "app", "prompt": .string(prompt)]])
                    let reply = try await socket.receive(until: { $0.controlType == "submitted" })
                    received += reply
                    let submitted = try #require(reply.last)
                    #expect(submitted["request_id"]?.stringValue == "r\(index)")
                    #expect(submitted["job"]?["status"]?.stringValue == "queued")
                    let id = try #require(submitted["job_id"]?.stringValue)
                    ids.append(id)
                    let job = try await worker.claim(id)
                    try await worker.emit(job, 1...2)
                }
                for id in ids { try await worker.succeed(JobID(rawValue: id)!) }
                var ends = 0
                while ends < 2, let message = try await socket.receive() {
                    received.append(message)
                    if message.controlType == "end" { ends += 1 }
                }
                return (received, ids)
            }
            let (received, ids) = messages
            for id in ids {
                let mine = received.filter { $0["job_id"]?.stringValue == id }
                #expect(seqs(mine) == [1, 2], "\(id)")
                #expect(mine.last?.controlType == "end")
                #expect(mine.last?["job"]?["status"]?.stringValue == "succeeded")
            }
            #expect(close?.code == 1000)  // closed by the client at the end of the test
        }
    }

    @Test func cancelOverTheSocketEndsTheJobsStream() async throws {
        try await withStreamingAPI { fixture, base in
            let (messages, _) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/stream"), headers: Self.bearer(fixture.alice)
            ) { socket in
                try await socket.send(["action": "submit", "job": ["type": "generate", "project": "app", "prompt": "p"]])
                var received = try await socket.receive(until: { $0.controlType == "submitted" })
                let id = try #require(received.last?["job_id"]?.stringValue)
                try await socket.send(["action": "cancel", "id": .string(id), "request_id": 7])
                received += try await socket.receive(until: { $0.controlType == "end" })
                return received
            }
            let cancel = try #require(messages.first { $0.controlType == "cancel_requested" })
            #expect(cancel["request_id"]?.intValue == 7)
            #expect(cancel["job"]?["status"]?.stringValue == "cancelled")
            let end = try #require(messages.last)
            #expect(end["job"]?["status"]?.stringValue == "cancelled")
            #expect(end["job"]?["error"]?["code"]?.stringValue == "E007")
        }
    }

    @Test func badRequestsOnTheSocketAnswerErrorsAndKeepItOpen() async throws {
        try await withStreamingAPI { fixture, base in
            let worker = FakeWorker(store: fixture.store)
            // Bob's job, which Alice must not see (low priority: the fake worker takes Alice's first).
            let bobs = try await fixture.store.submit(NewJob(
                userID: fixture.bob.id, kind: "generate", project: "app", priority: -5, payload: ["prompt": "p"])).job
            let (replies, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/stream"), headers: Self.bearer(fixture.alice)
            ) { socket in
                var replies: [JSONValue] = []
                let requests: [JSONValue] = [
                    ["action": "submit", "request_id": "a", "job": ["type": "generate", "project": "app", "prompt": ""]],
                    ["action": "subscribe", "request_id": "b", "id": .string(bobs.id.rawValue)],
                    ["action": "cancel", "request_id": "c", "id": .string(bobs.id.rawValue)],
                    ["action": "subscribe", "request_id": "d", "id": "job_malformed"],
                    ["action": "unsubscribe", "request_id": "e", "id": .string(bobs.id.rawValue)],
                    ["action": "submit", "request_id": "f", "idempotency_key": "", "job": ["type": "generate", "project": "app", "prompt": "p"]],
                ]
                for request in requests {
                    try await socket.send(request)
                    replies += try await socket.receive(until: { $0.controlType == "error" })
                }
                // Still open: a valid subscription works afterwards.
                try await socket.send(["action": "submit", "request_id": "g", "job": ["type": "generate", "project": "app", "prompt": "p"]])
                let submitted = try await socket.receive(until: { $0.controlType == "submitted" })
                let id = try #require(submitted.last?["job_id"]?.stringValue)
                try await worker.succeed(try await worker.claim(id))
                replies += try await socket.receive(until: { $0.controlType == "end" })
                return replies
            }
            let errors = replies.filter { $0.controlType == "error" }
            #expect(errors.map { $0["request_id"]?.stringValue ?? "" } == ["a", "b", "c", "d", "e", "f"])
            #expect(errors.map { $0["error"]?["code"]?.stringValue ?? "" } == ["E003", "E013", "E013", "E013", "E013", "E003"])
            #expect(errors.first?["error"]?["details"]?["field"]?.stringValue == "prompt")
            #expect(replies.last?["job"]?["status"]?.stringValue == "succeeded")
            #expect(close?.code == 1000)
            // Bob's job was not touched.
            #expect(try await fixture.store.job(bobs.id, userID: nil)?.status == .queued)
        }
    }

    @Test func subscribeFromASeqAndUnsubscribe() async throws {
        try await withStreamingAPI { fixture, base in
            let worker = FakeWorker(store: fixture.store)
            let job = try await worker.startJob(for: fixture.alice.id)
            try await worker.emit(job, 1...5)
            let (messages, _) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/stream?token=\(fixture.alice.secret)")
            ) { socket in
                try await socket.send(["action": "subscribe", "id": .string(job.rawValue), "after": 3])
                var received = try await socket.receive(until: { $0.streamSeq == 5 })
                try await socket.send(["action": "unsubscribe", "id": .string(job.rawValue)])
                received += try await socket.receive(until: { $0.controlType == "unsubscribed" })
                return received
            }
            #expect(messages.first?.controlType == "subscribed")
            #expect(seqs(messages) == [4, 5])
            #expect(messages.last?["job_id"]?.stringValue == job.rawValue)
        }
    }

    @Test func aSocketFollowsAtMost32JobsAndRefusesTheNextWithE002() async throws {
        try await withStreamingAPI { fixture, base in
            var submitted: [String] = []
            for n in 0..<33 {
                submitted.append(try await fixture.store.submit(NewJob(
                    userID: fixture.alice.id, kind: "generate", project: "app", payload: ["prompt": .string("p\(n)")])).job.id.rawValue)
            }
            let ids = submitted
            let answered: @Sendable (JSONValue) -> Bool = { ["subscribed", "error"].contains($0.controlType ?? "") }
            let (replies, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/stream"), headers: Self.bearer(fixture.alice)
            ) { socket in
                var replies: [JSONValue] = []
                for (n, id) in ids.enumerated() {
                    try await socket.send(["action": "subscribe", "request_id": .number(Double(n)), "id": .string(id)])
                    replies += try await socket.receive(until: answered)
                }
                // Subscribing again to a followed job does not count as one more.
                try await socket.send(["action": "subscribe", "request_id": "again", "id": .string(ids[0])])
                replies += try await socket.receive(until: answered)
                // Unsubscribing frees a place for the refused job.
                try await socket.send(["action": "unsubscribe", "id": .string(ids[1])])
                replies += try await socket.receive(until: { $0.controlType == "unsubscribed" })
                try await socket.send(["action": "subscribe", "request_id": "freed", "id": .string(ids[32])])
                replies += try await socket.receive(until: answered)
                return replies
            }
            let answers = replies.filter(answered)
            try #require(answers.count == 35, "\(answers)")
            #expect(answers.prefix(32).allSatisfy { $0.controlType == "subscribed" })
            let refused = answers[32]
            #expect(refused.controlType == "error")
            #expect(refused["request_id"]?.intValue == 32)
            #expect(refused["error"]?["code"]?.stringValue == "E002")
            #expect(refused["error"]?["details"]?["max"]?.intValue == 32)
            #expect(answers[33].controlType == "subscribed" && answers[33]["request_id"]?.stringValue == "again")
            #expect(answers[34].controlType == "subscribed" && answers[34]["job_id"]?.stringValue == ids[32])
            #expect(close?.code == 1000)
        }
    }

    @Test func aClientMessageOverOneMiBClosesWith1009() async throws {
        try await withStreamingAPI { fixture, base in
            let (received, close) = try await WebSocketTestClient.connect(
                WebSocketTestClient.url(base, "/v1/stream"), headers: Self.bearer(fixture.alice)
            ) { socket in
                try await socket.send(text: #"{"action":"subscribe","id":""# + String(repeating: "x", count: 1 << 20) + #""}"#)
                return try await socket.receiveAll()
            }
            #expect(received.isEmpty)
            #expect(close?.code == 1009)
        }
    }

    // MARK: - SSE

    @Test func sseStreamsEventsWithIDsLiveThenEndsAndResumesFromLastEventID() async throws {
        try await withStreamingAPI { fixture, base in
            let worker = FakeWorker(store: fixture.store)
            let job = try await worker.startJob(for: fixture.alice.id)
            try await worker.emit(job, 1...3)
            let url = base + "/v1/jobs/\(job.rawValue)/events"
            // Live: read the first three, then the worker writes more and finishes.
            let response = try await openSSE(url, headers: Self.bearer(fixture.alice))
            #expect(response.status.code == 200)
            #expect(response.headers.first(name: "Content-Type")?.hasPrefix("text/event-stream") == true)
            var iterator = response.body.makeAsyncIterator()
            var text = ""
            while !text.contains("id: 3\n"), let chunk = try await iterator.next() { text += String(buffer: chunk) }
            try await worker.emit(job, 4...5)
            try await worker.succeed(job)
            while let chunk = try await iterator.next() { text += String(buffer: chunk) }
            let events = parseSSE(text)
            #expect(text.hasPrefix("retry: "))
            #expect(events.compactMap(\.id) == ["1", "2", "3", "4", "5"])
            #expect(events.compactMap { $0.json?["seq"]?.intValue } == [1, 2, 3, 4, 5])
            #expect(events.last?.event == "end")
            #expect(events.last?.json?["job"]?["status"]?.stringValue == "succeeded")

            // A reconnecting EventSource sends Last-Event-ID (which wins over ?after=).
            let resumed = try await readSSE(try await openSSE(url + "?after=1", headers: Self.bearer(fixture.alice).merging(["Last-Event-ID": "3"]) { $1 }))
            #expect(parseSSE(resumed).compactMap(\.id) == ["4", "5"])
            // EventSource cannot set headers: ?token= works for the event stream.
            let byQuery = try await readSSE(try await openSSE(url + "?token=\(fixture.alice.secret)&after=4", headers: [:]))
            #expect(parseSSE(byQuery).compactMap(\.id) == ["5"])
        }
    }

    @Test func sseRefusesBadResumePointsAndOthersJobsAndQueryTokensOnJSON() async throws {
        try await withStreamingAPI { fixture, base in
            let job = try await fixture.store.submit(NewJob(
                userID: fixture.alice.id, kind: "generate", project: "app", payload: ["prompt": "p"])).job
            let url = base + "/v1/jobs/\(job.id.rawValue)/events"
            let bad = try await openSSE(url, headers: Self.bearer(fixture.alice).merging(["Last-Event-ID": "abc"]) { $1 })
            #expect(bad.status.code == 400)
            let badBody = JSONValue.parse(String(buffer: try await bad.body.collect(upTo: 1 << 16)))
            #expect(badBody?["error"]?["details"]?["field"]?.stringValue == "Last-Event-ID")
            let others = try await openSSE(url, headers: Self.bearer(fixture.bob))
            #expect(others.status.code == 404)
            // A query token is for event streams only, not for JSON pages.
            var plain = HTTPClientRequest(url: url + "?token=\(fixture.alice.secret)")
            plain.method = .GET
            let json = try await HTTPClient.shared.execute(plain, timeout: .seconds(30))
            #expect(json.status.code == 401)
        }
    }
}
