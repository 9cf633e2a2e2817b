import AsyncHTTPClient
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

    @Option(help: "Sandbox cgroup limits: required (default as root), auto (where delegated; default otherwise) or off.")
    var sandboxCgroups: SandboxConfiguration.CgroupMode?

    @Option(help: "Memory of each job's sandbox, in MiB (cgroup; tmpfs counts too).")
    var sandboxMemoryMb: UInt64 = 4096

    @Option(help: "Processes and threads of each job's sandbox (cgroup).")
    var sandboxPids: UInt64 = 512

    @Option(help: "CPUs each job's sandbox may use (cgroup), e.g. 1.5; default unlimited.")
    var sandboxCpus: Double?

    @Option(help: "Size of the sandbox's /tmp, in MiB.")
    var sandboxTmpMb: UInt64 = 512

    @Option(help: "Size of the sandbox's $HOME, in MiB.")
    var sandboxHomeMb: UInt64 = 256

    @Option(help: "Bytes of files one project may hold, in MiB: uploads, a running job's workspace and applied changes.")
    var workspaceQuotaMb: Int = 256

    @Option(help: "Model tokens (input + output + cache writes) one job may use through its gateway; 0: unlimited.")
    var jobTokenBudget: Int = 5_000_000

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
        if let cpus = sandboxCpus, !(cpus > 0 && cpus <= 1024) {
            throw ValidationError("--sandbox-cpus must be positive")
        }
        guard workspaceQuotaMb >= 1 else { throw ValidationError("--workspace-quota-mb must be at least 1") }
        guard jobTokenBudget >= 0 else { throw ValidationError("--job-token-budget must be 0 (unlimited) or more") }
        guard sandboxMemoryMb >= 64, sandboxPids >= 16, sandboxTmpMb >= 1, sandboxHomeMb >= 1 else {
            throw ValidationError("sandbox limits too small: --sandbox-memory-mb ≥ 64, --sandbox-pids ≥ 16, tmpfs sizes ≥ 1")
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
            keepRuns: keepRuns, tokenBudget: jobTokenBudget > 0 ? jobTokenBudget : nil)
        let helper = HelperLocator.path(of: "jobserver-launch", override: environment["JOBSERVER_LAUNCHER_PATH"])
        let launcher: any AgentLauncher
        if unsafeDirectAgent {
            logger.warning("UNSAFE: agents run without a sandbox (--unsafe-direct-agent)")
            launcher = DirectLauncher(helperPath: helper)
        } else {
            let sandbox = SandboxLauncher(helperPath: helper, configuration: SandboxConfiguration(
                cgroups: sandboxCgroups, memoryBytes: sandboxMemoryMb << 20, maxProcesses: sandboxPids,
                cpuMillis: sandboxCpus.map { UInt64($0 * 1000) }, tmpBytes: sandboxTmpMb << 20,
                homeBytes: sandboxHomeMb << 20,
                cgroupRoot: environment["JOBSERVER_CGROUP_ROOT"].flatMap { $0.isEmpty ? nil : $0 },
                cgroupParent: environment["JOBSERVER_CGROUP_PARENT"].flatMap { $0.isEmpty ? nil : $0 }))
            // Fail at start, with the reason, rather than fail every job with E006.
            if let problem = await SandboxSelfCheck.run(sandbox) {
                logger.error("the sandbox does not work on this host", metadata: ["reason": "\(problem)"])
                throw ExitCode(78)  // EX_CONFIG
            }
            launcher = sandbox
        }
        // One client for the model upstream, shared by every job's gateway.
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton,
                                    configuration: GatewayConfiguration.httpClientConfiguration())
        let worker = Worker(
            store: jobStore, workspaces: WorkspaceStore(root: data.workspaces, limits: WorkspaceLimits(maxProjectBytes: workspaceQuotaMb << 20)), launcher: launcher, httpClient: httpClient,
            configuration: configuration, runsDirectory: data.runs, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: jobStore), .init(service: worker, successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
        do {
            try await group.run()
        } catch {
            try? await httpClient.shutdown()
            throw error
        }
        try await httpClient.shutdown()
    }
}

extension SandboxConfiguration.CgroupMode: ExpressibleByArgument {}
