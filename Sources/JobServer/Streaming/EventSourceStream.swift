import HTTPTypes
import Hummingbird
import NIOCore
import Queue

/// `GET /v1/jobs/{id}/events` with `Accept: text/event-stream`: the job's events as
/// Server-Sent Events (`SSEEncoder`), from `Last-Event-ID` (or `?after=`), live until the
/// `end` event, then the response ends.
///
/// The stream shares the job's tail and the bounded queue with the WebSockets: a reader too
/// slow for the live events gets `event: error` (`E008`) when it catches up, then the end of
/// the response, and reconnects with `Last-Event-ID`. A comment line every `heartbeat` keeps
/// proxies from closing a quiet stream and finds clients that went away.
struct EventSourceStream: Sendable {
    let hub: JobEventHub

    static let lastEventID = HTTPField.Name("Last-Event-ID")!
    /// How long a disconnected browser waits before it reconnects (the `retry:` field).
    static let retryMilliseconds = 2000

    /// Whether the client asked for an event stream rather than a JSON page.
    static func isRequested(by request: Request) -> Bool {
        request.headers[values: .accept].contains { $0.lowercased().contains("text/event-stream") }
    }

    /// Where to start: `Last-Event-ID` (a reconnecting `EventSource`) wins over `?after=`.
    static func position(of request: Request) throws(APIError) -> Int64 {
        if let text = request.headers[lastEventID] {
            guard let value = Int64(text.trimmingCharacters(in: .whitespaces)), value >= 0 else {
                throw APIError.invalid("Last-Event-ID must be an event sequence number", field: "Last-Event-ID")
            }
            return value
        }
        if let text = request.uri.queryParameters["after"] {
            guard let value = Int64(text), value >= 0 else {
                throw APIError.invalid("'after' must be an integer >= 0", field: "after")
            }
            return value
        }
        return 0
    }

    func response(job: JobID, after: Int64, channel: any Channel) -> Response {
        let headers: HTTPFields = [
            .contentType: "text/event-stream; charset=utf-8", .cacheControl: "no-cache",
            HTTPField.Name("X-Accel-Buffering")!: "no",
        ]
        return Response(status: .ok, headers: headers, body: ResponseBody { [hub] writer in
            let configuration = hub.configuration
            let queue = OutboundQueue(maxMessages: configuration.queueMessages, maxBytes: configuration.queueBytes)
            let generation = queue.restart(job)
            await WebSocketSession.limitSendBuffer(of: channel, to: configuration.socketSendBufferBytes)
            try await writer.write(SSEEncoder.prelude(retryMilliseconds: Self.retryMilliseconds))
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    do {
                        try await EventPump.follow(job, after: after, generation: generation, hub: hub, queue: queue)
                        queue.finish(.complete)
                    } catch {
                        if !Task.isCancelled, !(error is CancellationError) { queue.finish(.failed(StreamFailure.from(error))) }
                    }
                }
                group.addTask {
                    while (try? await Task.sleep(for: configuration.heartbeat)) != nil {
                        _ = queue.reply(.heartbeat)  // a full queue needs no heartbeat
                    }
                }
                group.addTask {
                    // A reader that stopped reading cannot even take the last event: drop it.
                    guard await queue.ended() != nil, (try? await Task.sleep(for: configuration.closeTimeout)) != nil else { return }
                    try? await channel.close()
                }
                do {
                    while let batch = await queue.take() {
                        for message in batch { try await writer.write(SSEEncoder.encode(message)) }
                    }
                    if case .failed(let failure) = queue.outcome { try await writer.write(SSEEncoder.failure(failure)) }
                } catch {
                    queue.finish(.clientGone)
                }
                group.cancelAll()
            }
            try await writer.finish(nil)
        })
    }
}
