import Queue

/// Why the server ends a stream early: a typed error carrying the service's error code
/// (DESIGN §4), which picks the WebSocket close code (`WebSocketCloseCode`) and fills the
/// close reason and the SSE `error` event with the error envelope.
public struct StreamFailure: Error, Sendable, Hashable {
    public var code: ErrorCode
    public var message: String
    public var details: JSONValue?

    public init(_ code: ErrorCode, _ message: String, details: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }

    /// The WebSocket close code for this failure.
    public var closeCode: WebSocketCloseCode { WebSocketCloseCode(code) }

    /// `{"error": {"code", "name", "message", "retryable", "details"}}` — the HTTP envelope
    /// without `status`, since a stream failure has no HTTP status of its own.
    public var envelope: JSONValue {
        .object(["error": JobView.error(JobError(code, message, details: details))])
    }

    /// The envelope as a close reason, which RFC 6455 caps at 123 bytes: if the whole envelope
    /// does not fit, `details` is emptied, then `message` is shortened (on a character
    /// boundary) until it does. Keys are sorted so the text is stable.
    public var closeReason: String {
        var candidate = self
        var text = candidate.envelope.jsonText()
        if text.utf8.count <= Self.maxReasonBytes { return text }
        candidate.details = nil
        text = candidate.envelope.jsonText()
        while text.utf8.count > Self.maxReasonBytes, !candidate.message.isEmpty {
            candidate.message.removeLast()
            text = candidate.envelope.jsonText()
        }
        return text
    }

    static let maxReasonBytes = 123

    // MARK: - The failures the streams report

    public static let unauthorized = StreamFailure(.unauthorized, "missing or invalid API token")
    public static let jobNotFound = StreamFailure(.notFound, "job not found")
    public static let slowConsumer = StreamFailure(.resourceLimit, "client too slow", details: .object(["limit": .string("queue")]))
    public static let idle = StreamFailure(.timeout, "idle socket", details: .object(["limit": .string("idle")]))
    public static let storeUnavailable = StreamFailure(.internal, "the job store is unavailable")

    public static func protocolError(_ message: String) -> StreamFailure {
        StreamFailure(.invalidRequest, message)
    }

    /// One failure of each kind the streams close with (the documented close codes).
    public static let kinds: [StreamFailure] = [
        unauthorized, jobNotFound, slowConsumer, idle, storeUnavailable, protocolError("message is not a JSON object"),
    ]

    /// Any error met while streaming, as a failure: store and API errors keep their codes,
    /// anything else is `E500`.
    static func from(_ error: any Error) -> StreamFailure {
        switch error {
        case let failure as StreamFailure: failure
        case let error as APIError: StreamFailure(error.code, error.message, details: error.details)
        case let error as JobError: StreamFailure(error.code, error.message, details: error.details)
        case StoreError.notFound: jobNotFound
        default: storeUnavailable
        }
    }
}
