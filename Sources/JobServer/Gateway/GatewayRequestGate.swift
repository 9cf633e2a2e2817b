import Foundation
import NIOHTTP1

/// Decides, from the request head alone, whether a request is forwarded and where.
///
/// Pure and synchronous, so every rule is tested without sockets. The checks run in this
/// order, and the first that fails answers:
/// 1. the target is origin-form (`/…`) and the method is not CONNECT — else ``GatewayErrorReply/proxyRequest(method:target:)``;
/// 2. exactly one `Host`, naming loopback (`127.0.0.1`, `localhost`, `[::1]`, any port) — the
///    sandbox's forwarder relays the agent's own `Host: 127.0.0.1:PORT`; anything else is a
///    request nobody should be sending here (DNS rebinding, a confused client);
/// 3. the path is exactly `/v1/messages` or `/v1/messages/count_tokens` (no normalisation: a
///    variant such as `/v1//messages` or `/v1/messages/` is refused, never "fixed"), and the
///    query, forwarded verbatim, holds only URL query characters;
/// 4. the method is POST;
/// 5. the placeholder key, in `x-api-key` or `Authorization: Bearer`, compared in constant time;
/// 6. the token budget is not used up;
/// 7. a declared `Content-Length` is within the body limit.
struct GatewayRequestGate: Sendable {
    /// The two endpoints that are forwarded.
    enum Endpoint: String, Sendable {
        case messages = "/v1/messages"
        case countTokens = "/v1/messages/count_tokens"
    }

    /// Where an admitted request goes.
    struct Route: Sendable, Equatable {
        var endpoint: Endpoint
        /// The raw query string without `?` (e.g. `beta=true`), forwarded as is.
        var query: String?

        /// The path and query to append to the upstream base URL.
        var pathAndQuery: String {
            endpoint.rawValue + (query.map { "?" + $0 } ?? "")
        }
    }

    let placeholderKey: String
    let maxRequestBodyBytes: Int

    /// The route for `head`, or the error to answer with.
    func evaluate(_ head: HTTPRequestHead, budgetExceeded: Bool) -> Result<Route, GatewayErrorReply> {
        guard head.method != .CONNECT, head.uri.hasPrefix("/") else {
            return .failure(.proxyRequest(method: head.method.rawValue, target: head.uri))
        }
        let hosts = head.headers["host"]
        guard hosts.count == 1, let host = hosts.first, Self.isLoopbackHost(host) else {
            return .failure(.foreignHost(hosts.first))
        }
        let (path, query) = Self.split(target: head.uri)
        guard let endpoint = Endpoint(rawValue: path) else {
            return .failure(.unknownPath(path))
        }
        if let query, !query.utf8.allSatisfy(Self.isQueryByte) {
            return .failure(.malformedRequest)
        }
        guard head.method == .POST else {
            return .failure(.methodNotAllowed(method: head.method.rawValue, path: path))
        }
        switch presentedKey(head.headers) {
        case .none:
            return .failure(.unauthenticated(keyPresent: false))
        case .some(let key) where !Self.constantTimeEquals(key, placeholderKey):
            return .failure(.unauthenticated(keyPresent: true))
        default:
            break
        }
        if budgetExceeded {
            return .failure(.budgetExhausted)
        }
        if let declared = head.headers["content-length"].first.flatMap({ Int($0) }), declared > maxRequestBodyBytes {
            return .failure(.bodyTooLarge(limit: maxRequestBodyBytes))
        }
        return .success(Route(endpoint: endpoint, query: query))
    }

    /// The key the client presented: the only `x-api-key`, else a `Bearer` authorization.
    /// Several `x-api-key` headers present an empty key (never equal to the placeholder).
    private func presentedKey(_ headers: HTTPHeaders) -> String? {
        let apiKeys = headers["x-api-key"]
        if apiKeys.count > 1 { return "" }
        if let key = apiKeys.first { return key }
        guard let authorization = headers["authorization"].first else { return nil }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return "" }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    /// Splits an origin-form target at the first `?`.
    static func split(target: String) -> (path: String, query: String?) {
        guard let mark = target.firstIndex(of: "?") else { return (target, nil) }
        return (String(target[..<mark]), String(target[target.index(after: mark)...]))
    }

    /// RFC 3986 query characters: unreserved, sub-delims, `%`, `:`, `@`, `/`, `?`. Anything
    /// else could not be carried in the upstream URL as is.
    private static func isQueryByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            Array("-._~!$&'()*+,;=%:@/?".utf8).contains(byte)
        }
    }

    /// `127.0.0.1`, `localhost` or `[::1]`, each optionally with `:PORT` (1–65535).
    static func isLoopbackHost(_ value: String) -> Bool {
        let lowered = value.lowercased()
        for name in ["127.0.0.1", "localhost", "[::1]"] where lowered.hasPrefix(name) {
            let rest = lowered.dropFirst(name.count)
            if rest.isEmpty { return true }
            guard rest.first == ":" else { continue }
            let digits = rest.dropFirst()
            guard (1...5).contains(digits.count), digits.allSatisfy(\.isASCIIDigitCharacter),
                  let port = Int(digits), (1...65535).contains(port)
            else { return false }
            return true
        }
        return false
    }

    /// Compares without an early exit, so the time taken does not tell how much of a guess
    /// was right (it depends only on the expected key's length).
    static func constantTimeEquals(_ candidate: String, _ expected: String) -> Bool {
        let given = Array(candidate.utf8)
        let wanted = Array(expected.utf8)
        var difference: UInt8 = given.count == wanted.count ? 0 : 1
        for index in wanted.indices {
            difference |= (index < given.count ? given[index] : 0) ^ wanted[index]
        }
        return difference == 0
    }
}

private extension Character {
    var isASCIIDigitCharacter: Bool { isASCII && isNumber }
}
