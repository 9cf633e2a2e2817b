import Queue

/// A message a client sends on a streaming WebSocket (`docs/streaming.md`).
///
/// Anything that is not one of these — not a JSON object, an unknown `action`, a field of the
/// wrong type — is a protocol error: the connection closes with `4003` and the envelope names
/// the problem. A well-formed message about a job the caller cannot see is not a protocol
/// error: `/v1/stream` answers it with an `error` reply and keeps the socket open.
enum StreamClientMessage: Sendable, Hashable {
    /// `{"after": n}` on `/v1/jobs/{id}/stream`: restart the stream after `n`.
    case rewind(after: Int64)
    /// `{"action": "submit", "job": {…}, "idempotency_key"?, "request_id"?}`
    case submit(job: JSONValue, idempotencyKey: String?, requestID: JSONValue?)
    /// `{"action": "subscribe", "id", "after"?, "request_id"?}`
    case subscribe(id: String, after: Int64, requestID: JSONValue?)
    /// `{"action": "unsubscribe", "id", "request_id"?}`
    case unsubscribe(id: String, requestID: JSONValue?)
    /// `{"action": "cancel", "id", "request_id"?}`
    case cancel(id: String, requestID: JSONValue?)

    /// A message on `/v1/jobs/{id}/stream`, where only a rewind is understood.
    static func parseJobStream(_ value: JSONValue) throws(StreamFailure) -> StreamClientMessage {
        guard let object = value.objectValue, object.count == 1, let after = object["after"] else {
            throw .protocolError(#"the only message is {"after": n}"#)
        }
        return .rewind(after: try position(after))
    }

    /// A message on `/v1/stream`.
    static func parseSocket(_ value: JSONValue) throws(StreamFailure) -> StreamClientMessage {
        guard let object = value.objectValue, let action = object["action"]?.stringValue else {
            throw .protocolError("a message needs an \"action\"")
        }
        let requestID = object["request_id"]
        switch requestID {
        case nil, .string?, .number?: break
        default: throw .protocolError("request_id must be a string or a number")
        }
        switch action {
        case "submit":
            guard let job = object["job"], job.objectValue != nil else { throw .protocolError("submit needs a \"job\" object") }
            var key: String?
            if let value = object["idempotency_key"] {
                guard let text = value.stringValue else { throw .protocolError("idempotency_key must be a string") }
                key = text
            }
            return .submit(job: job, idempotencyKey: key, requestID: requestID)
        case "subscribe":
            return .subscribe(id: try id(object), after: try object["after"].map(position) ?? 0, requestID: requestID)
        case "unsubscribe":
            return .unsubscribe(id: try id(object), requestID: requestID)
        case "cancel":
            return .cancel(id: try id(object), requestID: requestID)
        default:
            throw .protocolError("unknown action")
        }
    }

    private static func id(_ object: [String: JSONValue]) throws(StreamFailure) -> String {
        guard let id = object["id"]?.stringValue else { throw .protocolError("the message needs a job \"id\"") }
        return id
    }

    /// A sequence number to stream after: an integer ≥ 0.
    static func position(_ value: JSONValue) throws(StreamFailure) -> Int64 {
        guard let number = value.doubleValue, number >= 0, number < 9.0e15, number.rounded() == number else {
            throw .protocolError("after must be an integer >= 0")
        }
        return Int64(number)
    }
}
