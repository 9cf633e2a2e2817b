import Queue

/// The close codes of the streaming WebSockets (`docs/streaming.md`, `docs/openapi.yaml`).
///
/// Failures close with `4000 + n` for error code `Enn` (`E008` → `4008`, `E500` → `4500`), so
/// the whole mapping from the service's error codes lives here and clients can turn a close
/// code back into the error code they already handle. The close frame's reason is the error
/// envelope (`StreamFailure.closeReason`).
public struct WebSocketCloseCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt16

    public init(rawValue: UInt16) {
        self.rawValue = rawValue
    }

    /// The stream is complete: every event and the `end` message were sent (or the client
    /// closed). Without an `end` before it, the server is shutting down: resume by seq.
    public static let normal = WebSocketCloseCode(rawValue: 1000)
    /// The peer did not answer a heartbeat ping before the next one.
    public static let goingAway = WebSocketCloseCode(rawValue: 1001)

    /// The private-use code (4000–4999) that stands for `code`.
    public init(_ code: ErrorCode) {
        let number = UInt16(code.rawValue.dropFirst()) ?? 500
        self.init(rawValue: 4000 + number)
    }

    /// The error code a private-use close code stands for, `nil` for standard codes.
    public var errorCode: ErrorCode? {
        guard (4000...4999).contains(rawValue) else { return nil }
        let number = Int(rawValue) - 4000
        let text = number < 100 ? "E0" + (number < 10 ? "0" : "") + String(number) : "E" + String(number)
        return ErrorCode(rawValue: text)
    }

    public var description: String { String(rawValue) }
}
