import Foundation
import NIOHTTP1

/// Which headers cross the gateway, in each direction.
///
/// Upstream, the agent's end-to-end headers go through (`anthropic-version`, `anthropic-beta`,
/// `content-type`, `user-agent`, `x-stainless-*`, …) and these do not:
/// - hop-by-hop headers (RFC 9110 §7.6.1), including any the `Connection` header names;
/// - `Host` and `Content-Length`, which the HTTP client sets for the upstream request;
/// - `Expect` (the body is streamed, not negotiated);
/// - the agent's credentials (`x-api-key`, `Authorization`), replaced by the real `x-api-key`;
/// - `Accept-Encoding`, so replies come uncompressed and their usage can be read as they pass.
///
/// Downstream, the upstream's headers go through minus hop-by-hop ones, with
/// `Connection: close` (one request per connection) and any value containing the real key
/// redacted.
enum GatewayHeaders {
    /// Replaces the real key wherever a reply would carry it.
    static let redaction = "[redacted]"

    private static let hopByHop: Set<String> = [
        "connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
        "upgrade", "proxy-authenticate", "proxy-authorization",
    ]

    private static let notForwardedUpstream: Set<String> = hopByHop.union([
        "host", "content-length", "expect", "x-api-key", "authorization", "accept-encoding",
    ])

    /// The headers for the upstream request: the agent's end-to-end headers and the real key.
    static func upstream(from incoming: HTTPHeaders, apiKey: String) -> HTTPHeaders {
        let named = connectionOptions(incoming)
        var headers = HTTPHeaders()
        for (name, value) in incoming {
            let lowered = name.lowercased()
            guard !notForwardedUpstream.contains(lowered), !named.contains(lowered) else { continue }
            headers.add(name: name, value: value)
        }
        headers.add(name: "x-api-key", value: apiKey)
        return headers
    }

    /// The headers for the reply to the agent.
    /// - Parameter keepContentLength: false when the gateway rewrites the body (error replies).
    static func downstream(from upstream: HTTPHeaders, apiKey: String, keepContentLength: Bool) -> HTTPHeaders {
        let named = connectionOptions(upstream)
        var headers = HTTPHeaders()
        for (name, value) in upstream {
            let lowered = name.lowercased()
            guard !hopByHop.contains(lowered), !named.contains(lowered) else { continue }
            if lowered == "content-length", !keepContentLength { continue }
            headers.add(name: name, value: redact(value, apiKey: apiKey))
        }
        headers.add(name: "connection", value: "close")
        return headers
    }

    /// `text` with every occurrence of the real key replaced.
    static func redact(_ text: String, apiKey: String) -> String {
        text.contains(apiKey) ? text.replacingOccurrences(of: apiKey, with: redaction) : text
    }

    /// The header names listed in `Connection` (hop-by-hop by declaration).
    private static func connectionOptions(_ headers: HTTPHeaders) -> Set<String> {
        Set(headers["connection"].flatMap { $0.split(separator: ",") }.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        })
    }
}
