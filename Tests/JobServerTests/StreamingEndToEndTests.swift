import Foundation
import Queue
import Testing
import TestSupport

/// Live streams end to end: a real `jobserver serve` process, a separate `jobserver worker`
/// process running the real Claude Code CLI against the scripted model, a real SQLite store,
/// and WebSocket clients. The stream must match the stored log exactly, survive client
/// disconnects and a server restart, and never affect the agent.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct StreamingEndToEndTests {
    static let sentence = "The quick brown fox jumps over the lazy dog while the stream carries every single word"

    /// The job's log as `GET /v1/jobs/{id}/events` pages it.
    static func storedEvents(_ harness: ServiceHarness, _ id: String, token: String) async throws -> [JSONValue] {
        var events: [JSONValue] = []
        var after = 0
        while true {
            let page = try #require(try await harness.request("GET", "/v1/jobs/\(id)/events?after=\(after)&limit=1000", token: token).json)
            let batch = page["events"]?.arrayValue ?? []
            events += batch
            after = page["next_after"]?.intValue ?? after
            if batch.isEmpty { return events }
        }
    }

    /// The text of the `text_delta` token events among stream messages.
    static func deltas(_ messages: [JSONValue]) -> [String] {
        messages.compactMap { message in
            guard message["type"]?.stringValue == "stream_event",
                  message["data"]?["event"]?["delta"]?["type"]?.stringValue == "text_delta" else { return nil }
            return message["data"]?["event"]?["delta"]?["text"]?.stringValue
        }
    }

    /// Messages until `count` token deltas have arrived (the job is then mid-way through its text).
    static func receiveWords(_ count: Int, from socket: WebSocketTestClient) async throws -> [JSONValue] {
        var received: [JSONValue] = []
        while deltas(received).count < count, let message = try await socket.receive() { received.append(message) }
        return received
    }

    /// A scripted model, a server and a worker process, a user, and one job running `script`.
    static func withRunningJob(
        _ script: ModelScript, serverArguments: [String] = [], workerEnvironment: [String: String] = [:],
        _ body: (_ harness: ServiceHarness, _ token: String, _ id: String) async throws -> Void
    ) async throws {
        try await withScriptedModelServer { model in
            model.register(script, as: "stream")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("streamer")
                try await harness.startServer(arguments: serverArguments)
                try harness.startWorker(extraEnvironment: workerEnvironment)
                let id = try await EndToEndJobTests.submit(harness, token: token, [
                    "type": "generate", "project": "demo", "prompt": .string("stream \(ModelScript.marker("stream"))"),
                ])
                try await body(harness, token, id)
            }
        }
    }

    /// Every event exactly once, in order, with the stored seqs and data; token deltas word by
    /// word; the `end` message carries the final job.
    @Test func webSocketSeesEveryEventOnceInOrderThenTheFinalJob() async throws {
        try await Self.withRunningJob([
            .toolUse([.write(path: "{{cwd}}/notes.txt", content: "streamed\n")]),
            ModelTurn.text(Self.sentence).slowStream(chunkDelay: .milliseconds(20)),
        ]) { harness, token, id in
            let (messages, close) = try await WebSocketTestClient.connect(
                harness.webSocketURL("/v1/jobs/\(id)/stream"), protocols: ["jobserver.v1", "bearer.\(token)"]
            ) { socket in try await socket.receiveAll() }
            #expect(close?.code == 1000)
            let events = messages.filter { $0.streamSeq != nil }
            #expect(seqs(events) == Array(1...max(1, events.count)), "every event once, in order")
            let stored = try await Self.storedEvents(harness, id, token: token)
            #expect(stored.map { $0["seq"]?.intValue ?? 0 } == seqs(events))
            #expect(stored.map { $0["type"]?.stringValue ?? "" } == events.map { $0["type"]?.stringValue ?? "" })
            #expect(stored.map { $0["data"] } == events.map { $0["data"] })
            // Token deltas: the final text arrived word by word before the result.
            let words = Self.deltas(events)
            #expect(words.count >= Self.sentence.split(separator: " ").count)
            #expect(words.joined() == Self.sentence)
            let end = try #require(messages.last)
            #expect(end.controlType == "end")
            #expect(end["job"]?["status"]?.stringValue == "succeeded")
            #expect(end["job"]?["last_event_seq"]?.intValue == events.count)
            #expect(end["job"]?["result"]?["text"]?.stringValue == Self.sentence)
        }
    }

    /// A client that disconnects mid-job and resumes from its last seq misses nothing and
    /// sees nothing twice; the agent is not stopped by the disconnect.
    @Test func disconnectMidJobThenResumeFromTheLastSeq() async throws {
        try await Self.withRunningJob([ModelTurn.text(Self.sentence + " " + Self.sentence).slowStream(chunkDelay: .milliseconds(60))]) { harness, token, id in
            let url = harness.webSocketURL("/v1/jobs/\(id)/stream")
            let (first, _) = try await WebSocketTestClient.connect(url, headers: ["Authorization": "Bearer \(token)"]) { socket in
                // Leave after the second word: the agent is still writing.
                try await Self.receiveWords(2, from: socket)
            }
            let last = try #require(seqs(first).last)
            let (rest, close) = try await WebSocketTestClient.connect(url + "?after=\(last)", headers: ["Authorization": "Bearer \(token)"]) { socket in
                try await socket.receiveAll()
            }
            #expect(close?.code == 1000)
            let all = seqs(first) + seqs(rest)
            #expect(all == Array(1...all.count), "no gap, no duplicate across the reconnect")
            #expect(rest.last?["job"]?["status"]?.stringValue == "succeeded", "the disconnect did not stop the agent")
            #expect(all.count == (try await Self.storedEvents(harness, id, token: token)).count)
        }
    }

    /// The server process is killed mid-job and a new one started; the client resumes from
    /// its last seq on the new server and loses nothing (the log lives in the store).
    @Test func serverRestartMidJobThenResumeLosesNothing() async throws {
        try await Self.withRunningJob([ModelTurn.text(Self.sentence + " " + Self.sentence).slowStream(chunkDelay: .milliseconds(60))]) { harness, token, id in
            let (first, _) = try await WebSocketTestClient.connect(
                harness.webSocketURL("/v1/jobs/\(id)/stream?token=\(token)")
            ) { socket in
                var received = try await Self.receiveWords(2, from: socket)
                await harness.killServer()
                // Whatever was already on the wire; then the connection is gone.
                while let message = try? await socket.receive() { received.append(message) }
                return received
            }
            try await harness.startServer()
            let last = try #require(seqs(first).last)
            let (rest, close) = try await WebSocketTestClient.connect(
                harness.webSocketURL("/v1/jobs/\(id)/stream?after=\(last)&token=\(token)")
            ) { socket in try await socket.receiveAll() }
            #expect(close?.code == 1000)
            let all = seqs(first) + seqs(rest)
            #expect(all == Array(1...all.count), "no gap, no duplicate across the restart")
            #expect(all.count == (try await Self.storedEvents(harness, id, token: token)).count)
            #expect(rest.last?["job"]?["status"]?.stringValue == "succeeded")
            #expect(Self.deltas(first + rest).joined() == Self.sentence + " " + Self.sentence)
        }
    }

    /// `/v1/stream`: a job submitted over the socket is followed on it and cancelled over it;
    /// the worker stops the agent and the stream ends with the cancelled job.
    @Test func submitAndCancelOverTheSocket() async throws {
        try await withScriptedModelServer { model in
            model.register([.hang], as: "hang")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("dave")
                try await harness.startServer()
                try harness.startWorker()
                let (messages, _) = try await WebSocketTestClient.connect(
                    harness.webSocketURL("/v1/stream"), protocols: ["jobserver.v1", "bearer.\(token)"]
                ) { socket in
                    try await socket.send(["action": "submit", "request_id": "s1", "job": [
                        "type": "generate", "project": "demo", "prompt": .string("wait \(ModelScript.marker("hang"))"),
                    ]])
                    var received = try await socket.receive(until: { $0.controlType == "submitted" })
                    let id = try #require(received.last?["job_id"]?.stringValue)
                    // The agent is running once the CLI's init line is in the log.
                    received += try await socket.receive(until: { $0["type"]?.stringValue == "system" })
                    try await socket.send(["action": "cancel", "id": .string(id), "request_id": "c1"])
                    received += try await socket.receive(until: { $0.controlType == "end" })
                    return received
                }
                let id = try #require(messages.first?["job_id"]?.stringValue)
                #expect(messages.filter { $0.streamSeq != nil }.allSatisfy { $0["job_id"]?.stringValue == id })
                #expect(messages.contains { $0.controlType == "cancel_requested" && $0["request_id"]?.stringValue == "c1" })
                let end = try #require(messages.last)
                #expect(end["job"]?["status"]?.stringValue == "cancelled")
                #expect(end["job"]?["error"]?["code"]?.stringValue == "E007")
            }
        }
    }

    /// A client that stops reading is closed with 4008 while the job goes on to succeed; it
    /// resumes from the last seq it got and ends with the complete log.
    @Test func slowConsumerIsClosedWhileTheJobFinishesNormally() async throws {
        let word = String(repeating: "w", count: 2000)
        let text = Array(repeating: word, count: 300).joined(separator: " ")
        let server = [
            "--stream-queue-messages", "16", "--stream-queue-bytes", "65536", "--stream-heartbeat-seconds", "600",
            "--stream-socket-send-buffer", "16384",
        ]
        try await Self.withRunningJob(
            [ModelTurn.text(text).delay(.milliseconds(300)).slowStream(chunkDelay: .milliseconds(1))], serverArguments: server
        ) { harness, token, id in
            let url = harness.webSocketURL("/v1/jobs/\(id)/stream")
            let (first, close) = try await WebSocketTestClient.connect(
                url, headers: ["Authorization": "Bearer \(token)"], receiveBufferBytes: 4096
            ) { socket in
                var received = try await socket.receive(until: { $0.streamSeq != nil })  // caught up, live
                // Stop reading until the job is over.
                let job = try await harness.waitForJob(id, token: token)
                #expect(job["status"]?.stringValue == "succeeded", "the slow client did not affect the job: \(job)")
                received += try await socket.receiveAll()
                return received
            }
            #expect(close?.code == 4008, "\(String(describing: close))")
            #expect(close?.envelope?["error"]?["code"]?.stringValue == "E008")
            let got = seqs(first)
            #expect(got == Array(1...got.count), "what arrived before the close is a prefix, in order")
            let (rest, restClose) = try await WebSocketTestClient.connect(
                url + "?after=\(got.count)", headers: ["Authorization": "Bearer \(token)"]
            ) { socket in try await socket.receiveAll() }
            #expect(restClose?.code == 1000)
            let stored = try await Self.storedEvents(harness, id, token: token)
            let all = got + seqs(rest)
            #expect(all.count == stored.count && all == Array(1...stored.count), "\(all.count) of \(stored.count) events")
            #expect(rest.last?["job"]?["status"]?.stringValue == "succeeded")
        }
    }

    /// A worker with a small event-log cap stops a chatty agent and fails the job with E008;
    /// the stored log stays dense and within the cap, and its stream ends with that job.
    @Test func eventLogCapFailsTheJobWithE008() async throws {
        let text = Array(repeating: "chatter", count: 400).joined(separator: " ")
        try await Self.withRunningJob(
            [ModelTurn.text(text).slowStream(chunkDelay: .milliseconds(1))], workerEnvironment: ["JOBSERVER_MAX_EVENT_LOG_BYTES": "20000"]
        ) { harness, token, id in
            let (messages, close) = try await WebSocketTestClient.connect(
                harness.webSocketURL("/v1/jobs/\(id)/stream"), headers: ["Authorization": "Bearer \(token)"]
            ) { socket in try await socket.receiveAll() }
            #expect(close?.code == 1000)
            let end = try #require(messages.last)
            #expect(end["job"]?["status"]?.stringValue == "failed")
            #expect(end["job"]?["error"]?["code"]?.stringValue == "E008", "\(end)")
            #expect(end["job"]?["error"]?["details"]?["limit"]?.stringValue == "event_log_bytes")
            let stored = try await Self.storedEvents(harness, id, token: token)
            #expect(stored.map { $0["seq"]?.intValue ?? 0 } == Array(1...stored.count))
            // The cap counts the stored text itself: read it from the store file.
            let store = try SQLiteJobStore(path: harness.dataDirectory + "/jobs.sqlite3")
            let raw = try await store.events(of: try #require(JobID(rawValue: id)), after: 0, limit: 10_000)
            let bytes = raw.reduce(0) { $0 + $1.type.utf8.count + $1.data.utf8.count }
            #expect(raw.count == stored.count)
            #expect(bytes <= 20000 && bytes > 10000, "\(bytes) bytes stored")
            #expect(seqs(messages) == stored.map { $0["seq"]?.intValue ?? 0 })
        }
    }
}
