import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// Runs a credential-holding model gateway for one job for the duration of `body`
/// (DESIGN §5.3, §6 "Network").
///
/// The agent talks to the gateway with a job-scoped placeholder key; the gateway forwards
/// `POST /v1/messages` and `POST /v1/messages/count_tokens` (JSON and SSE, streamed) to the
/// configured upstream with the real key, and refuses everything else. It meters token usage
/// per job and refuses further calls once the job's budget is used.
///
/// Lifetime is structured: the listeners are bound (and the Unix socket made connectable by
/// the agent's uid) before `body` starts; when `body` returns or throws, the listeners close,
/// requests still running are cancelled (with their upstream requests), and the socket file is
/// removed, all before this call returns. Nothing outlives it.
///
/// `httpClient` is the worker's shared client (one per process, not per job); configure it
/// with ``GatewayConfiguration/httpClientConfiguration()``. Request bodies are streamed, so the
/// client never replays one to a redirect target either way.
///
/// Built on SwiftNIO's HTTP/1 codec directly rather than on Hummingbird: the gateway needs the
/// raw request target (Hummingbird's HTTP types flatten `POST http://evil/v1/messages` into
/// the path `/v1/messages`, so a proxy request could not be refused), and it must keep
/// reading the agent's side while a reply streams, so that an agent going away cancels a
/// silent upstream (Hummingbird writes the body after the handler returns, with a writer that
/// cannot be shared with a watching task).
///
/// From `JobRunner`, per job (the socket goes in a directory private to the job):
/// ```swift
/// let gatewayConfiguration = try GatewayConfiguration(worker: configuration, unixSocketPath: socketPath)
/// try await withModelGateway(gatewayConfiguration, httpClient: httpClient, logger: logger) { gateway in
///     // The agent's environment gets these and never `configuration.apiKey`.
///     let modelEnvironment = gateway.agentEnvironment(baseURL: "http://127.0.0.1:\(forwarderPort)")
///     // … launch and supervise the agent …
///     // Afterwards: `gateway.budgetExceeded` → fail with E008; `gateway.usage` → metrics.
/// }
/// ```
///
/// - Throws: ``GatewayError`` when the configuration is invalid or a listener cannot be bound;
///   otherwise whatever `body` throws.
public func withModelGateway<T>(
    _ configuration: GatewayConfiguration,
    httpClient: HTTPClient,
    logger: Logger,
    body: (RunningGateway) async throws -> T
) async throws -> T {
    try configuration.validate()
    let meter = UsageMeter(tokenBudget: configuration.tokenBudget)
    let connection = GatewayConnection(
        gate: GatewayRequestGate(placeholderKey: configuration.placeholderKey,
                                 maxRequestBodyBytes: configuration.maxRequestBodyBytes),
        forwarder: UpstreamForwarder(
            httpClient: httpClient, upstreamBase: try configuration.validatedUpstreamBase(),
            apiKey: configuration.apiKey, responseTimeout: configuration.upstreamResponseTimeout,
            maxErrorBodyBytes: configuration.maxErrorBodyBytes,
            maxMeteredBodyBytes: configuration.maxMeteredBodyBytes, meter: meter, logger: logger),
        meter: meter, maxRequestBodyBytes: configuration.maxRequestBodyBytes, logger: logger)

    let listeners = try await GatewayListeners.bind(configuration)
    let running = RunningGateway(
        unixSocketPath: configuration.unixSocketPath, tcpPort: listeners.tcpPort,
        placeholderKey: configuration.placeholderKey, meter: meter)
    logger.debug("model gateway listening", metadata: [
        "socket": "\(configuration.unixSocketPath ?? "-")", "port": "\(listeners.tcpPort.map(String.init) ?? "-")",
    ])
    let outcome = await withTaskGroup(of: Void.self, returning: Result<T, any Error>.self) { group in
        for listener in listeners.channels {
            group.addTask { await accept(on: listener, serving: connection, logger: logger) }
        }
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await body(running))
        } catch {
            outcome = .failure(error)
        }
        group.cancelAll()
        return outcome
    }
    listeners.removeSocketFile()
    meter.finishReports()
    logger.debug("model gateway stopped", metadata: ["usage": "\(meter.usage)"])
    return try outcome.get()
}

/// Accepts connections until the task is cancelled; each runs in a child task, so cancelling
/// this one cancels every request in flight and waits for them.
private func accept(on listener: GatewayListeners.Listener, serving connection: GatewayConnection, logger: Logger) async {
    do {
        try await listener.executeThenClose { inbound in
            await withDiscardingTaskGroup { group in
                do {
                    for try await child in inbound {
                        group.addTask { await connection.serve(child) }
                    }
                } catch {
                    logger.debug("model gateway stopped accepting", metadata: ["error": "\(error)"])
                }
                group.cancelAll()
            }
        }
    } catch {
        logger.debug("model gateway listener closed", metadata: ["error": "\(error)"])
    }
}

/// The bound listeners of one gateway, and the socket file they own.
struct GatewayListeners: Sendable {
    typealias Listener = NIOAsyncChannel<GatewayConnection.Channel, Never>

    let channels: [Listener]
    let tcpPort: Int?
    /// The socket path and the identity (device, inode) of the file bound there, so only that
    /// file is removed at the end, never one that replaced it.
    let socketFile: (path: String, device: UInt64, inode: UInt64)?

    /// Binds what the configuration asks for; on any failure closes what was bound and throws.
    static func bind(_ configuration: GatewayConfiguration) async throws(GatewayError) -> GatewayListeners {
        var channels: [Listener] = []
        var socketFile: (path: String, device: UInt64, inode: UInt64)?
        var tcpPort: Int?
        var boundPath: String?
        do {
            if let path = configuration.unixSocketPath {
                channels.append(try await bindUnix(path))
                boundPath = path
                socketFile = try makeConnectable(path)
            }
            if configuration.listensOnLoopbackTCP {
                let channel = try await bindLoopbackTCP()
                channels.append(channel)
                tcpPort = channel.channel.localAddress?.port
            }
        } catch {
            for channel in channels { try? await channel.channel.close() }
            if let boundPath { unlink(boundPath) }
            throw error
        }
        return GatewayListeners(channels: channels, tcpPort: tcpPort, socketFile: socketFile)
    }

    /// Removes the socket file if it is still the one bound.
    func removeSocketFile() {
        guard let socketFile else { return }
        var info = stat()
        guard lstat(socketFile.path, &info) == 0, UInt64(info.st_dev) == socketFile.device,
              UInt64(info.st_ino) == socketFile.inode
        else { return }
        unlink(socketFile.path)
    }

    private static var bootstrap: ServerBootstrap {
        ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    }

    private static func setUpConnection(_ channel: any Channel) -> EventLoopFuture<GatewayConnection.Channel> {
        channel.eventLoop.makeCompletedFuture {
            // No pipelining assistance (one request per connection) and no automatic error
            // replies: malformed requests get an Anthropic-shaped 400 from GatewayConnection.
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                withPipeliningAssistance: false, withErrorHandling: false)
            return try GatewayConnection.Channel(wrappingChannelSynchronously: channel)
        }
    }

    private static func bindUnix(_ path: String) async throws(GatewayError) -> Listener {
        do {
            return try await bootstrap.bind(unixDomainSocketPath: path, cleanupExistingSocketFile: true) {
                setUpConnection($0)
            }
        } catch {
            throw .bindFailed(address: path, reason: "\(error)")
        }
    }

    private static func bindLoopbackTCP() async throws(GatewayError) -> Listener {
        do {
            return try await bootstrap.bind(host: "127.0.0.1", port: 0) { setUpConnection($0) }
        } catch {
            throw .bindFailed(address: "127.0.0.1:0", reason: "\(error)")
        }
    }

    /// Lets the agent's uid connect: 0666 (the directory around the socket is what keeps
    /// everyone else out). Returns the file's identity for the removal at the end.
    private static func makeConnectable(_ path: String) throws(GatewayError) -> (path: String, device: UInt64, inode: UInt64) {
        var info = stat()
        guard chmod(path, 0o666) == 0, lstat(path, &info) == 0 else {
            throw .bindFailed(address: path, reason: "cannot make the socket connectable: \(String(cString: strerror(errno)))")
        }
        return (path, UInt64(info.st_dev), UInt64(info.st_ino))
    }
}
