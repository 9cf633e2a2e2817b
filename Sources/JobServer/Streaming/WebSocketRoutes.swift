import HTTPTypes
import Hummingbird
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

/// Builds the router that decides WebSocket upgrades (`/v1/jobs/{id}/stream`, `/v1/stream`).
public func buildWebSocketRouter(
    store: any JobStore & AccountStore, workspaces: WorkspaceStore, hub: JobEventHub
) -> Router<JobServerWebSocketContext> {
    let router = Router(context: JobServerWebSocketContext.self)
    router.add(middleware: WebSocketAuthMiddleware(authenticator: Authenticator(accounts: store, changes: store.changes)))
    JobStreamController(store: store, hub: hub).addRoutes(to: router)
    StreamSocketController(store: store, workspaces: workspaces, hub: hub).addRoutes(to: router)
    return router
}
