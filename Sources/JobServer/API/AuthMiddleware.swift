import Foundation
import HTTPTypes
import Hummingbird
import Queue

/// Authenticates `Authorization: Bearer <token>` or `x-api-key: <token>` against the stored
/// token hashes; an `EventSource` request (`Accept: text/event-stream`) may also pass
/// `?token=` (see `Credentials`). A missing, malformed, unknown or revoked token answers
/// 401 `E011`.
struct AuthMiddleware: RouterMiddleware {
    typealias Context = JobServerRequestContext
    let authenticator: Authenticator

    init(accounts: any AccountStore, changes: any ChangeFeed) {
        self.authenticator = Authenticator(accounts: accounts, changes: changes)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let secret = EventSourceStream.isRequested(by: request)
            ? Credentials.streamToken(in: request, subprotocol: false)
            : Credentials.headerToken(in: request.headers)
        guard let secret else {
            let message = request.headers[.authorization] != nil
                ? "unsupported Authorization scheme: send Authorization: Bearer <token> or x-api-key"
                : "missing API token: send Authorization: Bearer <token> or x-api-key"
            throw APIError(.unauthorized, message,
                           status: .unauthorized, headers: [.wwwAuthenticate: "Bearer"])
        }
        guard let user = try await authenticator.user(for: secret) else {
            throw APIError(.unauthorized, "invalid or revoked API token", status: .unauthorized,
                           headers: [.wwwAuthenticate: "Bearer error=\"invalid_token\""])
        }
        var context = context
        context.user = user
        return try await next(request, context)
    }
}
