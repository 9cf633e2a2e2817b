import ArgumentParser
import Foundation
import Sandbox
import ServiceLifecycle

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "worker", abstract: "Claim and run jobs.")

    @OptionGroup var store: StoreOptions

    @Option(help: "Jobs run at once by this process.")
    var concurrency: Int = 2

    @Option(help: "Seconds a claimed job's lease lasts without a heartbeat.")
    var leaseSeconds: Int = 30

    @Option(help: "Seconds between heartbeats of a running job.")
    var heartbeatSeconds: Double = 5

    @Option(help: "Seconds running jobs may finish after SIGTERM before their leases are released.")
    var shutdownGraceSeconds: Int = 30

    @Option(help: "The Claude Code CLI (JOBSERVER_CLAUDE_PATH; default the one scripts/setup.sh installed).")
    var claudePath: String?

    @Option(help: "Bytes each job's event log may hold before the job fails with E008 (JOBSERVER_MAX_EVENT_LOG_BYTES, default 32 MiB).")
    var maxEventLogBytes: Int64?

    @Flag(help: "UNSAFE, development only: run the agent as a plain child process with no sandbox.")
    var unsafeDirectAgent = false

    @Flag(help: "Keep each job's run directory under data/runs after it ends.")
    var keepRuns = false

    func validate() throws {
        guard (1...256).contains(concurrency) else { throw ValidationError("--concurrency must be between 1 and 256") }
        guard leaseSeconds >= 1 else { throw ValidationError("--lease-seconds must be at least 1") }
        guard heartbeatSeconds > 0, heartbeatSeconds < Double(leaseSeconds) else {
            throw ValidationError("--heartbeat-seconds must be positive and shorter than the lease")
        }
        if let maxEventLogBytes, maxEventLogBytes < 1024 {
            throw ValidationError("--max-event-log-bytes must be at least 1024")
        }
        guard unsafeDirectAgent else {
            throw ValidationError("""
                no sandbox launcher is available in this build; refusing to run agents without isolation. \
                For development only, pass --unsafe-direct-agent to run the agent as a plain child process \
                (it can read and write everything the worker can, and sees the real API key).
                """)
        }
    }

    func run() async throws {
        let logger = LogSetup.bootstrap(label: "jobserver.worker")
        let environment = ProcessInfo.processInfo.environment
        let data = store.dataDirectory
        let jobStore = try store.openStore()
        var agentEnvironment: [String: String] = [:]
        for name in WorkerConfiguration.forwardedVariables {
            if let value = environment[name] { agentEnvironment[name] = value }
        }
        let configuration = WorkerConfiguration(
            concurrency: concurrency, lease: .seconds(leaseSeconds), heartbeat: .milliseconds(Int(heartbeatSeconds * 1000)),
            shutdownGrace: .seconds(shutdownGraceSeconds),
            claudePath: claudePath ?? WorkerConfiguration.defaultClaudePath(environment),
            upstreamBaseURL: environment["ANTHROPIC_BASE_URL"], apiKey: environment["ANTHROPIC_API_KEY"],
            agentEnvironment: agentEnvironment,
            maxEventLogBytes: maxEventLogBytes ?? environment["JOBSERVER_MAX_EVENT_LOG_BYTES"].flatMap(Int64.init)
                ?? WorkerConfiguration.defaultMaxEventLogBytes,
            keepRuns: keepRuns)
        logger.warning("UNSAFE: agents run without a sandbox (--unsafe-direct-agent)")
        let launcher = DirectLauncher(helperPath: HelperLocator.path(
            of: "jobserver-launch", override: environment["JOBSERVER_LAUNCHER_PATH"]))
        let worker = Worker(
            store: jobStore, workspaces: WorkspaceStore(root: data.workspaces), launcher: launcher,
            configuration: configuration, runsDirectory: data.runs, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: jobStore), .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        try await group.run()
    }
}
