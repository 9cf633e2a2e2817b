import HTTPTypes
import Hummingbird
import Queue

/// Where a request's API token comes from, and which user it belongs to (DESIGN §4).
///
/// HTTP routes take `Authorization: Bearer <token>` or `x-api-key: <token>`. Browsers cannot
/// set headers on a WebSocket or an `EventSource`, so streams also take the token from a
/// `bearer.<token>` WebSocket subprotocol (`StreamSubprotocol`) or a `token` query parameter.
/// Credentials fail closed: an `Authorization` header of another scheme, or two sources naming
/// different tokens, count as no token at all.
struct Authenticator: Sendable {
    let accounts: any AccountStore
    let cache: TokenCache

    init(accounts: any AccountStore, changes: any ChangeFeed) {
        self.accounts = accounts
        self.cache = TokenCache(feed: changes)
    }

    /// The live token's user, `nil` for an unknown, revoked or oversized token.
    func user(for secret: String) async throws -> User? {
        guard secret.utf8.count <= 256 else { return nil }
        return try await cache.user(forHash: TokenHasher.hash(secret), lookup: accounts.user(forTokenHash:))
    }
}

enum Credentials {
    static let apiKey = HTTPField.Name("x-api-key")!
    static let queryParameter = "token"

    /// The bearer token, else the `x-api-key`. An `Authorization` header of another scheme is
    /// refused even next to a valid `x-api-key`: ambiguous credentials fail closed.
    static func headerToken(in headers: HTTPFields) -> String? {
        if let authorization = headers[.authorization] {
            let parts = authorization.utf8.split(separator: UInt8(ascii: " "), maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2, parts[0].count == 6,
                  zip(parts[0], "bearer".utf8).allSatisfy({ $0 | 0x20 == $1 })
            else { return nil }
            // Trim blanks (space, tab) around the token without bridging through Foundation.
            let isBlank = { (byte: UInt8) in byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") }
            var token = parts[1][...]
            while let first = token.first, isBlank(first) { token = token.dropFirst() }
            while let last = token.last, isBlank(last) { token = token.dropLast() }
            return token.isEmpty ? nil : String(decoding: token, as: UTF8.self)
        }
        if let key = headers[apiKey], !key.isEmpty { return key }
        return nil
    }

    /// The token of a stream request: from the headers, the subprotocol (when
    /// `subprotocol`) or the `token` query parameter. `nil` unless exactly one token is named.
    static func streamToken(in request: Request, subprotocol: Bool) -> String? {
        var candidates: Set<String> = []
        if request.headers[.authorization] != nil || request.headers[apiKey] != nil {
            guard let token = headerToken(in: request.headers) else { return nil }
            candidates.insert(token)
        }
        if subprotocol {
            candidates.formUnion(StreamSubprotocol.tokens(offeredIn: request.headers))
        }
        for value in request.uri.queryParameters.getAll(queryParameter) {
            candidates.insert(String(value))
        }
        guard candidates.count == 1, let token = candidates.first, !token.isEmpty else { return nil }
        return token
    }
}
