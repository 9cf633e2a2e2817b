import Foundation
import HTTPTypes
import Hummingbird
import Queue

/// Authenticates `Authorization: Bearer <token>` or `x-api-key: <token>` against the stored
/// token hashes. A missing, malformed, unknown or revoked token answers 401 `E011`.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = JobServerRequestContext
    let accounts: any AccountStore
    let cache: TokenCache

    init(accounts: any AccountStore, changes: any ChangeFeed) {
        self.accounts = accounts
        self.cache = TokenCache(feed: changes)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let secret = Self.token(in: request.headers) else {
            let message = request.headers[.authorization] != nil
                ? "unsupported Authorization scheme: send Authorization: Bearer <token> or x-api-key"
                : "missing API token: send Authorization: Bearer <token> or x-api-key"
            throw APIError(.unauthorized, message,
                           status: .unauthorized, headers: [.wwwAuthenticate: "Bearer"])
        }
        guard secret.utf8.count <= 256,
              let user = try await cache.user(forHash: TokenHasher.hash(secret), lookup: accounts.user(forTokenHash:)) else {
            throw APIError(.unauthorized, "invalid or revoked API token", status: .unauthorized,
                           headers: [.wwwAuthenticate: "Bearer error=\"invalid_token\""])
        }
        var context = context
        context.user = user
        return try await next(request, context)
    }

    static let apiKey = HTTPField.Name("x-api-key")!

    /// The bearer token, else the `x-api-key`. An `Authorization` header of another scheme is
    /// refused even next to a valid `x-api-key`: ambiguous credentials fail closed.
    static func token(in headers: HTTPFields) -> String? {
        if let authorization = headers[.authorization] {
            let parts = authorization.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                return String(parts[1]).trimmingCharacters(in: .whitespaces)
            }
            return nil
        }
        if let key = headers[apiKey], !key.isEmpty { return key }
        return nil
    }
}
