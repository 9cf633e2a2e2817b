import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import JobServer
import Logging
import NIOCore
import Queue
import TestSupport
import Testing

/// A live in-process server (`buildApplication`, so WebSocket upgrades work) over a fresh
/// fixture; `baseURL` is its `http://` address.
func withStreamingAPI(
    streaming: StreamingConfiguration = StreamingConfiguration(),
    _ body: @escaping @Sendable (APIFixture, _ baseURL: String) async throws -> Void
) async throws {
    try await withTemporaryDirectory(prefix: "stream-api-") { directory in
        let fixture = try await APIFixture.make(in: directory)
        var logger = Logger(label: "stream-tests")
        logger.logLevel = ProcessInfo.processInfo.environment["STREAM_TEST_LOG"] != nil ? .debug : .critical
        let app = buildApplication(
            configuration: ServerConfiguration(host: "127.0.0.1", port: 0, streaming: streaming),
            store: fixture.store, workspaces: fixture.workspaces, logger: logger)
        try await app.test(.live) { client in
            let port = try #require(client.port)
            try await body(fixture, "http://localhost:\(port)")
        }
    }
}

/// Plays a worker against the store directly: claims the (only) queued job and writes events.
struct FakeWorker: Sendable {
    let store: SQLiteJobStore
    let owner = "fake-worker"

    /// Claims the next job; it must be `id`.
    func claim(_ id: String, sourceLocation: SourceLocation = #_sourceLocation) async throws -> JobID {
        let job = try #require(try await store.claim(owner: owner, lease: .seconds(60)), sourceLocation: sourceLocation)
        #expect(job.id.rawValue == id, sourceLocation: sourceLocation)
        return job.id
    }

    /// Stores a job of `user` directly and claims it (the only queued job).
    func startJob(for user: UserID) async throws -> JobID {
        let job = try await store.submit(NewJob(userID: user, kind: "generate", project: "app", payload: ["prompt": "p"])).job
        return try await claim(job.id.rawValue)
    }

    /// Appends events `{"n": from}`…`{"n": through}` of type `output`.
    @discardableResult
    func emit(_ id: JobID, _ numbers: ClosedRange<Int>, padding: Int = 0) async throws -> Int64 {
        let pad = String(repeating: "x", count: padding)
        return try await store.appendEvents(id, owner: owner, numbers.map {
            NewEvent(type: "output", data: #"{"n":\#($0),"pad":"\#(pad)"}"#)
        })
    }

    func succeed(_ id: JobID) async throws {
        try await store.complete(id, owner: owner, with: .succeeded(result: .object(["text": "done"]), metrics: nil))
    }
}

/// The `seq`s of the event messages among `messages`.
func seqs(_ messages: [JSONValue]) -> [Int] {
    messages.compactMap(\.streamSeq)
}

/// One SSE event as parsed by a test: its fields.
struct SSEEvent: Sendable, Hashable {
    var id: String?
    var event: String?
    var data: String
    var json: JSONValue? { JSONValue.parse(data) }
}

/// Parses a `text/event-stream` body (comments and `retry:` lines are skipped).
func parseSSE(_ text: String) -> [SSEEvent] {
    text.components(separatedBy: "\n\n").compactMap { block -> SSEEvent? in
        var event = SSEEvent(id: nil, event: nil, data: "")
        var hasData = false
        for line in block.split(separator: "\n", omittingEmptySubsequences: true) where !line.hasPrefix(":") {
            if line.hasPrefix("id: ") { event.id = String(line.dropFirst(4)) }
            if line.hasPrefix("event: ") { event.event = String(line.dropFirst(7)) }
            if line.hasPrefix("data: ") {
                event.data += String(line.dropFirst(6))
                hasData = true
            }
        }
        return hasData ? event : nil
    }
}

/// Reads a streaming HTTP body until `stop` says the text so far is enough (or the body ends).
func readSSE(
    _ response: HTTPClientResponse, until stop: @Sendable (String) -> Bool = { _ in false }
) async throws -> String {
    var text = ""
    for try await chunk in response.body {
        text += String(buffer: chunk)
        if stop(text) { break }
    }
    return text
}

/// A GET with `Accept: text/event-stream` and the given headers, answered as a stream.
func openSSE(_ url: String, headers: [String: String]) async throws -> HTTPClientResponse {
    var request = HTTPClientRequest(url: url)
    request.headers.add(name: "Accept", value: "text/event-stream")
    for (name, value) in headers { request.headers.add(name: name, value: value) }
    return try await HTTPClient.shared.execute(request, timeout: .seconds(60))
}
