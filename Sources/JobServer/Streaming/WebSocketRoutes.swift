import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import Queue

/// The WebSocket routes. Upgrades are routed by their own router (`buildWebSocketRouter`);
/// the HTTP router answers a plain `GET` on the same paths with `426 Upgrade Required` (`E003`)
/// rather than a misleading 404.
enum WebSocketRoutes {
    static let jobStream = "jobs/:id/stream"
    static let socket = "stream"

    static func addUpgradeRequired(to group: RouterGroup<JobServerRequestContext>) {
        for path in [jobStream, socket] {
            group.get(RouterPath(path)) { _, _ -> Response in
                throw APIError(.invalidRequest, "this route is a WebSocket: send a GET with Upgrade: websocket",
                               status: .upgradeRequired, headers: [.upgrade: "websocket", .connection: "Upgrade"])
            }
        }
    }
}

extension WebSocketRoutes {
    /// What a stream route does once upgraded, with its connection's session ready.
    typealias Handler = @Sendable (
        WebSocketSession, WebSocketInboundStream, WebSocketOutboundWriter, WebSocketRouterContext<JobServerWebSocketContext>
    ) async throws -> Void

    /// Registers a streaming WebSocket route: the upgrade always happens (failures are close
    /// codes), answers the `jobserver.v1` subprotocol when offered, and hands the route a
    /// prepared `WebSocketSession`.
    static func stream(
        _ path: RouterPath, on router: Router<JobServerWebSocketContext>, configuration: StreamingConfiguration,
        _ handler: @escaping Handler
    ) {
        router.ws(path, shouldUpgrade: { request, _ in
            .upgrade(StreamSubprotocol.responseHeaders(for: request.headers))
        }, onUpgrade: { inbound, outbound, context in
            let session = WebSocketSession(
                configuration: configuration, channel: context.requestContext.channel, logger: context.logger)
            await session.prepare()
            try await handler(session, inbound, outbound, context)
        })
    }
}

/// Builds the router that decides WebSocket upgrades (`/v1/jobs/{id}/stream`, `/v1/stream`).
public func buildWebSocketRouter(
    store: any JobStore & AccountStore, workspaces: WorkspaceStore, hub: JobEventHub, admission: Admission = Admission()
) -> Router<JobServerWebSocketContext> {
    let router = Router(context: JobServerWebSocketContext.self)
    router.add(middleware: WebSocketAuthMiddleware(authenticator: Authenticator(accounts: store, changes: store.changes)))
    JobStreamController(store: store, hub: hub).addRoutes(to: router)
    StreamSocketController(store: store, workspaces: workspaces, hub: hub, admission: admission).addRoutes(to: router)
    return router
}
