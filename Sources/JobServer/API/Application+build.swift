import Hummingbird
import HummingbirdWebSocket
import NIOCore
import Logging
import Queue
import ServiceLifecycle

/// How `jobserver serve` listens.
public struct ServerConfiguration: Sendable {
    public var host: String
    public var port: Int
    /// How submissions are admitted: per-user limits on or off, the global queue cap.
    public var admission: Admission
    /// Limits and timings of the WebSocket and SSE streams.
    public var streaming: StreamingConfiguration

    public init(
        host: String = "127.0.0.1", port: Int = 8080, admission: Admission = Admission(),
        streaming: StreamingConfiguration = StreamingConfiguration()
    ) {
        self.host = host
        self.port = port
        self.admission = admission
        self.streaming = streaming
    }
}

/// Builds the router with every HTTP route of DESIGN §4; tests call this directly. `hub`
/// (shared with the WebSocket router) serves the SSE streams; one is made when not given.
public func buildRouter(
    store: any JobStore & AccountStore, workspaces: WorkspaceStore, admission: Admission = Admission(),
    hub: JobEventHub? = nil
) -> Router<JobServerRequestContext> {
    let hub = hub ?? JobEventHub(store: store)
    let router = Router(context: JobServerRequestContext.self)
    router.add(middleware: ErrorMiddleware())
    HealthController(store: store, hub: hub).addRoutes(to: router)
    let v1 = router.group("v1").add(middleware: AuthMiddleware(accounts: store, changes: store.changes))
    JobsController(store: store, workspaces: workspaces, admission: admission, hub: hub).addRoutes(to: v1)
    ProjectsController(workspaces: workspaces, limits: store).addRoutes(to: v1)
    MeController(store: store, workspaces: workspaces).addRoutes(to: v1)
    WebSocketRoutes.addUpgradeRequired(to: v1)
    return router
}

/// The HTTP server with WebSocket upgrades: stateless over the store, so any number can run
/// against one store.
/// - Parameter onListening: called with the bound port once the server accepts connections
///   (useful with port 0).
public func buildApplication(
    configuration: ServerConfiguration, store: SQLiteJobStore, workspaces: WorkspaceStore, logger: Logger,
    onListening: @escaping @Sendable (Int) async -> Void = { _ in }
) -> some ApplicationProtocol {
    let streaming = configuration.streaming
    let hub = JobEventHub(store: store, configuration: streaming)
    let router = buildRouter(store: store, workspaces: workspaces, admission: configuration.admission, hub: hub)
    let webSocketRouter = buildWebSocketRouter(store: store, workspaces: workspaces, hub: hub, admission: configuration.admission)
    return Application(
        router: router,
        server: .http1WebSocketUpgrade(webSocketRouter: webSocketRouter, configuration: .init(ws: .init(
            maxFrameSize: streaming.maxFrameBytes, autoPing: .enabled(timePeriod: streaming.heartbeat),
            closeTimeout: streaming.closeTimeout))),
        configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "jobserver"),
        services: [store],
        onServerRunning: { channel in await onListening(channel.localAddress?.port ?? configuration.port) },
        logger: logger)
}
