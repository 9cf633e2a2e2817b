import Hummingbird
import HummingbirdWebSocket
import NIOCore
import Queue

/// The request context of the WebSocket upgrade router.
///
/// Authentication never refuses the upgrade: a refused upgrade is a bare HTTP error a browser
/// cannot read. `WebSocketAuthMiddleware` records who connected (or why not) here, and the
/// stream reports a failure after the upgrade as a documented close code with no data.
public struct JobServerWebSocketContext: RequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    /// The connection, so a close that cannot get through (a client that stopped reading) can
    /// be forced after `StreamingConfiguration.closeTimeout`.
    let channel: any Channel
    /// The authenticated user, or the failure to report once upgraded.
    var identity: Result<User, StreamFailure> = .failure(.unauthorized)

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.webSocket = .init()
        self.channel = source.channel
    }
}

/// Authenticates WebSocket upgrades from the `Authorization`/`x-api-key` headers, a
/// `bearer.<token>` subprotocol or a `token` query parameter (`Credentials`).
struct WebSocketAuthMiddleware: RouterMiddleware {
    typealias Context = JobServerWebSocketContext
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if let secret = Credentials.streamToken(in: request, subprotocol: true) {
            do {
                if let user = try await authenticator.user(for: secret) { context.identity = .success(user) }
            } catch {
                context.logger.error("token lookup failed", metadata: ["error": "\(error)"])
                context.identity = .failure(.storeUnavailable)
            }
        }
        return try await next(request, context)
    }
}
