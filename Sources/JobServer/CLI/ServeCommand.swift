import ArgumentParser
import Foundation
import Hummingbird
import Queue

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the HTTP API.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Address to bind (JOBSERVER_HOST, default 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (JOBSERVER_PORT, default 8080; 0 picks a free port).")
    var port: Int?

    @Option(help: "Write the bound port to this file once listening (for scripts that use port 0).")
    var portFile: String?

    @Option(help: "Most jobs waiting in the whole queue before submissions answer 503 E015 (JOBSERVER_MAX_QUEUE_DEPTH, default 100000; 0 = no cap).")
    var maxQueueDepth: Int?

    @Flag(inversion: .prefixedNo, help: "Enforce per-user submission limits: rate, max queued, daily budgets (JOBSERVER_USER_LIMITS=off disables).")
    var userLimits = true

    @Option(help: "Messages a stream connection may have queued before it is closed as a slow consumer (4008).")
    var streamQueueMessages: Int = StreamingConfiguration().queueMessages

    @Option(help: "Bytes a stream connection may have queued before it is closed as a slow consumer (4008).")
    var streamQueueBytes: Int = StreamingConfiguration().queueBytes

    @Option(help: "Kernel send buffer (SO_SNDBUF) of each stream connection, in bytes (default: the kernel's autotuning).")
    var streamSocketSendBuffer: Int?

    @Option(help: "Seconds between WebSocket pings and SSE keep-alive comments.")
    var streamHeartbeatSeconds: Double = 20

    @Option(help: "Seconds a /v1/stream socket may follow no job and say nothing before it is closed (4001).")
    var streamIdleSeconds: Double = 300

    func validate() throws {
        if let maxQueueDepth, maxQueueDepth < 0 { throw ValidationError("--max-queue-depth must be 0 (no cap) or positive") }
        guard streamQueueMessages >= 1, streamQueueBytes >= 1024 else {
            throw ValidationError("--stream-queue-messages must be at least 1 and --stream-queue-bytes at least 1024")
        }
        if let streamSocketSendBuffer, streamSocketSendBuffer < 4096 {
            throw ValidationError("--stream-socket-send-buffer must be at least 4096")
        }
        guard streamHeartbeatSeconds > 0, streamIdleSeconds > 0 else {
            throw ValidationError("--stream-heartbeat-seconds and --stream-idle-seconds must be positive")
        }
    }

    func run() async throws {
        let logger = LogSetup.bootstrap(label: "jobserver.serve")
        let environment = ProcessInfo.processInfo.environment
        let depth = maxQueueDepth ?? environment["JOBSERVER_MAX_QUEUE_DEPTH"].flatMap(Int.init) ?? 100_000
        let configuration = ServerConfiguration(
            host: host ?? environment["JOBSERVER_HOST"] ?? "127.0.0.1",
            port: port ?? environment["JOBSERVER_PORT"].flatMap(Int.init) ?? 8080,
            admission: Admission(userLimits: userLimits && environment["JOBSERVER_USER_LIMITS"] != "off",
                                 maxQueueDepth: depth > 0 ? depth : nil),
            streaming: StreamingConfiguration(
                queueMessages: streamQueueMessages, queueBytes: streamQueueBytes,
                heartbeat: .milliseconds(Int(streamHeartbeatSeconds * 1000)),
                idleTimeout: .milliseconds(Int(streamIdleSeconds * 1000)),
                socketSendBufferBytes: streamSocketSendBuffer))
        let jobStore = try store.openStore()
        let workspaces = WorkspaceStore(root: store.dataDirectory.workspaces)
        let portFile = self.portFile
        let app = buildApplication(configuration: configuration, store: jobStore, workspaces: workspaces, logger: logger) { port in
            logger.info("listening", metadata: ["host": "\(configuration.host)", "port": "\(port)"])
            if let portFile {
                try? String(port).write(toFile: portFile + ".tmp", atomically: false, encoding: .utf8)
                _ = rename(portFile + ".tmp", portFile)
            }
        }
        try await app.runService()
    }
}
