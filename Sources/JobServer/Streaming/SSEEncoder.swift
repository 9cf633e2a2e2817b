import NIOCore

/// Frames stream messages as Server-Sent Events (`text/event-stream`, WHATWG HTML §9.2).
///
/// Job events carry no `event:` field, so a browser's `EventSource.onmessage` sees them all,
/// and `id:` is their sequence number, so a reconnecting `EventSource` resumes with
/// `Last-Event-ID`. The job's end is `event: end`; a failure is `event: error` with the error
/// envelope; heartbeats are comment lines. The JSON is the WebSocket message's, which never
/// contains a raw newline (JSON escapes them), so each message is one `data:` line.
enum SSEEncoder {
    /// Sent first: how long a disconnected `EventSource` waits before reconnecting.
    static func prelude(retryMilliseconds: Int) -> ByteBuffer {
        ByteBuffer(string: "retry: \(retryMilliseconds)\n\n")
    }

    static func encode(_ message: StreamMessage) -> ByteBuffer {
        switch message.kind {
        case .event(let seq):
            return frame(head: "id: \(seq)\ndata: ", json: message.json)
        case .end:
            return frame(head: "event: end\ndata: ", json: message.json)
        case .reply:
            return frame(head: "data: ", json: message.json)
        case .heartbeat:
            return ByteBuffer(string: ": keep-alive\n\n")
        }
    }

    static func failure(_ failure: StreamFailure) -> ByteBuffer {
        frame(head: "event: error\ndata: ", json: ByteBuffer(string: failure.envelope.jsonText()))
    }

    private static func frame(head: String, json: ByteBuffer) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(head.utf8.count + json.readableBytes + 2)
        buffer.writeString(head)
        buffer.writeImmutableBuffer(json)
        buffer.writeString("\n\n")
        return buffer
    }
}
