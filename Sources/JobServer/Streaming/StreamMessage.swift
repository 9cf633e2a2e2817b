import NIOCore
import Queue

/// One message for stream clients, encoded once as JSON text and shared (the buffer's storage
/// is reference-counted) by every connection that sends it, so a thousand subscribers of one
/// job cost one encoding per event, not a thousand.
///
/// Event messages are `{"job_id", "seq", "type", "time", "data"}`; control messages have a
/// `type` and no `seq` (`end`, `submitted`, `error`, …; see `docs/streaming.md`).
public struct StreamMessage: Sendable {
    public enum Kind: Sendable, Hashable {
        /// An event of the job's log.
        case event(seq: Int64)
        /// The job's final message: `{"type": "end", "job_id", "job"}`.
        case end
        /// A reply to a client message.
        case reply
        /// Keeps an idle SSE connection open through proxies (SSE only, never sent on WebSockets).
        case heartbeat
    }

    public let kind: Kind
    /// The job the message is about (`nil` for replies about no job).
    public let jobID: JobID?
    public let json: ByteBuffer

    public var byteCount: Int { json.readableBytes }

    /// The event's sequence number, for event messages.
    public var seq: Int64? {
        if case .event(let seq) = kind { return seq }
        return nil
    }

    init(kind: Kind, jobID: JobID?, json: ByteBuffer) {
        self.kind = kind
        self.jobID = jobID
        self.json = json
    }

    static func event(_ event: JobEvent, of jobID: JobID) -> StreamMessage {
        StreamMessage(kind: .event(seq: event.seq), jobID: jobID, json: ByteBuffer(string: EventJSON.render(event, jobID: jobID)))
    }

    static func end(_ job: JobRecord) -> StreamMessage {
        let value: JSONValue = .object(["type": .string("end"), "job_id": .string(job.id.rawValue), "job": JobView.json(job)])
        return StreamMessage(kind: .end, jobID: job.id, json: encode(value))
    }

    /// A reply `{"type": type, ...fields}`; `request_id` is echoed when the client sent one.
    static func reply(_ type: String, jobID: JobID? = nil, requestID: JSONValue? = nil, _ fields: [String: JSONValue] = [:]) -> StreamMessage {
        var object = fields
        object["type"] = .string(type)
        if let jobID { object["job_id"] = .string(jobID.rawValue) }
        if let requestID { object["request_id"] = requestID }
        return StreamMessage(kind: .reply, jobID: jobID, json: encode(.object(object)))
    }

    /// An error reply: `{"type": "error", "error": {...envelope...}}` (the socket stays open).
    static func error(_ error: APIError, jobID: JobID? = nil, requestID: JSONValue? = nil) -> StreamMessage {
        reply("error", jobID: jobID, requestID: requestID, ["error": error.envelope["error"] ?? .null])
    }

    static let heartbeat = StreamMessage(kind: .heartbeat, jobID: nil, json: ByteBuffer())

    private static func encode(_ value: JSONValue) -> ByteBuffer {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        value.write(to: &bytes, sortedKeys: false)
        return ByteBuffer(bytes: bytes)
    }
}
