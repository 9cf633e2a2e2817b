import Logging
import NIOCore
import NIOHTTP1
import Queue

/// An answer the gateway gives itself instead of (or in place of) the upstream's, in
/// Anthropic's error shape `{"type":"error","error":{"type":…,"message":…}}` so the agent's
/// SDK reports it like any API error.
///
/// Refusals (everything but the upstream cases) are counted in
/// ``GatewayUsage/refusedRequests`` and logged with ``logReason``.
enum GatewayErrorReply: Error, Sendable, Equatable {
    /// Absolute-form or authority-form target, or CONNECT: someone tried to use the gateway as a proxy.
    case proxyRequest(method: String, target: String)
    /// `Host` missing, repeated, or not a loopback name: not a request the sandbox's forwarder relays.
    case foreignHost(String?)
    /// Not one of the two forwarded paths.
    case unknownPath(String)
    /// A forwarded path with a method other than POST.
    case methodNotAllowed(method: String, path: String)
    /// No placeholder key, or the wrong one.
    case unauthenticated(keyPresent: Bool)
    /// The job's token budget is used up.
    case budgetExhausted
    /// The request body is larger than the gateway forwards.
    case bodyTooLarge(limit: Int)
    /// The bytes were not HTTP/1.x, or the target has characters a URL cannot carry.
    case malformedRequest
    /// The upstream could not be reached or did not answer in time.
    case upstreamUnreachable
    /// The upstream's error reply was larger than the gateway relays.
    case upstreamReplyTooLarge(status: Int)

    /// Whether this is a refusal of the agent's request (rather than an upstream failure).
    var isRefusal: Bool {
        switch self {
        case .upstreamUnreachable, .upstreamReplyTooLarge: false
        default: true
        }
    }

    var status: HTTPResponseStatus {
        switch self {
        case .proxyRequest, .foreignHost: .forbidden
        case .unknownPath: .notFound
        case .methodNotAllowed: .methodNotAllowed
        case .unauthenticated: .unauthorized
        // 429 is what Anthropic answers for rate and spend limits, so SDKs and the CLI report
        // it as such; `x-should-retry: false` (see `headers`) tells them a retry will not help.
        case .budgetExhausted: .tooManyRequests
        case .bodyTooLarge: .payloadTooLarge
        case .malformedRequest: .badRequest
        case .upstreamUnreachable: .badGateway
        case .upstreamReplyTooLarge(let status): HTTPResponseStatus(statusCode: status)
        }
    }

    /// Anthropic's error type for the status.
    var errorType: String {
        switch self {
        case .proxyRequest, .foreignHost: "permission_error"
        case .unknownPath: "not_found_error"
        case .methodNotAllowed, .malformedRequest: "invalid_request_error"
        case .unauthenticated: "authentication_error"
        case .budgetExhausted: "rate_limit_error"
        case .bodyTooLarge: "request_too_large"
        case .upstreamUnreachable, .upstreamReplyTooLarge: "api_error"
        }
    }

    /// The message the agent sees; it never echoes the request (nothing to reflect back).
    var message: String {
        switch self {
        case .proxyRequest: "the model gateway is not a proxy"
        case .foreignHost: "the model gateway only answers requests for 127.0.0.1 or localhost"
        case .unknownPath: "the model gateway forwards only /v1/messages and /v1/messages/count_tokens"
        case .methodNotAllowed: "the model gateway forwards only POST"
        case .unauthenticated(let present): present ? "invalid x-api-key" : "missing x-api-key"
        case .budgetExhausted: "job token budget exhausted"
        case .bodyTooLarge(let limit): "request body larger than \(limit) bytes"
        case .malformedRequest: "malformed HTTP request"
        case .upstreamUnreachable: "upstream unreachable"
        case .upstreamReplyTooLarge: "upstream error reply too large to relay"
        }
    }

    /// What the log says about it (the request's own method, path and host, truncated).
    var logReason: String {
        switch self {
        case .proxyRequest(let method, let target): "proxy request \(method) \(Self.clip(target))"
        case .foreignHost(let host): "foreign host \(host.map(Self.clip) ?? "(none)")"
        case .unknownPath(let path): "path not forwarded: \(Self.clip(path))"
        case .methodNotAllowed(let method, let path): "method not allowed: \(method) \(Self.clip(path))"
        case .unauthenticated(let present): present ? "wrong placeholder key" : "no placeholder key"
        default: message
        }
    }

    /// Extra response headers.
    var headers: [(String, String)] {
        switch self {
        case .methodNotAllowed: [("allow", "POST")]
        case .budgetExhausted: [("x-should-retry", "false")]
        default: []
        }
    }

    /// The JSON body.
    var body: String {
        Self.errorBody(type: errorType, message: message)
    }

    /// Anthropic's error body for `type` and `message`.
    static func errorBody(type: String, message: String) -> String {
        JSONValue.object([
            "type": .string("error"),
            "error": .object(["type": .string(type), "message": .string(message)]),
        ]).jsonText()
    }

    private static func clip(_ text: String) -> String {
        text.count > 200 ? String(text.prefix(200)) + "…" : text
    }
}

extension GatewayErrorReply {
    /// The whole reply, ready to write.
    var responseParts: [HTTPServerResponsePart] {
        var fields = HTTPHeaders([("content-type", "application/json")])
        fields.add(contentsOf: headers)
        return Self.responseParts(status: status, headers: fields, body: ByteBuffer(string: body))
    }

    /// A complete reply with a buffered body: `Content-Length` set, `Connection: close`.
    static func responseParts(status: HTTPResponseStatus, headers: HTTPHeaders, body: ByteBuffer) -> [HTTPServerResponsePart] {
        var headers = headers
        headers.replaceOrAdd(name: "content-length", value: String(body.readableBytes))
        headers.replaceOrAdd(name: "connection", value: "close")
        return [
            .head(HTTPResponseHead(version: .http1_1, status: status, headers: headers)),
            .body(.byteBuffer(body)),
            .end(nil),
        ]
    }
}

extension GatewayErrorReply {
    /// Counts a refusal in `meter` and logs it with the request's method and target.
    func recordRefusal(in meter: UsageMeter, logger: Logger, method: String? = nil, target: String? = nil) {
        meter.record { $0.refusedRequests += 1 }
        logger.warning("model gateway refused a request", metadata: [
            "reason": "\(logReason)", "status": "\(status.code)",
            "method": "\(method ?? "-")", "target": "\(target.map(Self.clip) ?? "-")",
        ])
    }
}
