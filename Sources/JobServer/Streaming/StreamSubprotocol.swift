import HTTPTypes

/// The WebSocket subprotocol convention of the streams (`docs/streaming.md`).
///
/// A browser cannot set `Authorization` on a WebSocket, but it can offer subprotocols:
/// `new WebSocket(url, ["jobserver.v1", "bearer." + token])` sends
/// `Sec-WebSocket-Protocol: jobserver.v1, bearer.<token>`. The server takes the token from the
/// `bearer.` entry and answers `Sec-WebSocket-Protocol: jobserver.v1` only — never the token,
/// which would otherwise be echoed into logs and caches. A browser fails a handshake whose
/// answer names no offered protocol, so clients that send a token this way must offer
/// `jobserver.v1` as well. (API tokens are base64url, which is valid in a subprotocol name.)
enum StreamSubprotocol {
    /// The protocol the server speaks and selects.
    static let name = "jobserver.v1"
    /// The prefix of the entry that carries the token.
    static let tokenPrefix = "bearer."

    /// Every subprotocol the client offered, in order (the header may be repeated).
    static func offered(in headers: HTTPFields) -> [String] {
        headers[values: .secWebSocketProtocol].flatMap { value in
            value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
    }

    /// The tokens of `bearer.<token>` entries.
    static func tokens(offeredIn headers: HTTPFields) -> [String] {
        offered(in: headers).filter { $0.hasPrefix(tokenPrefix) }.map { String($0.dropFirst(tokenPrefix.count)) }
    }

    /// The upgrade answer's headers: `jobserver.v1` when the client offered it, else nothing.
    static func responseHeaders(for request: HTTPFields) -> HTTPFields {
        offered(in: request).contains(name) ? [.secWebSocketProtocol: name] : [:]
    }
}
