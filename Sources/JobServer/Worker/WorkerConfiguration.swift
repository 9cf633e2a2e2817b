import Foundation
import Sandbox

/// Everything a worker process needs to know, from flags and environment (DESIGN §7).
public struct WorkerConfiguration: Sendable {
    /// Jobs run at once by this process.
    public var concurrency: Int
    /// How long a claim holds without a heartbeat; a dead worker's jobs return after this.
    public var lease: Duration
    /// How often a running job's lease is renewed (and cancellation checked).
    public var heartbeat: Duration
    /// How long running jobs may go on after SIGTERM before their leases are released.
    public var shutdownGrace: Duration
    /// The Claude Code CLI.
    public var claudePath: String
    /// The model API the agent talks to (`ANTHROPIC_BASE_URL`), if not Anthropic's.
    public var upstreamBaseURL: String?
    /// The real API key (`ANTHROPIC_API_KEY`).
    public var apiKey: String?
    /// Extra environment passed to the agent (for example `CLAUDE_CODE_MAX_RETRIES`).
    public var agentEnvironment: [String: String]
    /// Output cap per job.
    public var maxOutputBytes: Int
    /// Cap on each job's stored event log (type and data bytes of every event); past it the
    /// agent is stopped and the job fails with `E008`.
    public var maxEventLogBytes: Int64
    /// Keep each job's run directory after it ends (debugging).
    public var keepRuns: Bool
    /// The resource limits every agent gets.
    public var limits: ResourceLimits
    /// Model tokens (input + output + cache creation) one job may use through its model
    /// gateway; `nil` is unlimited. A job past it fails with `E008`.
    public var tokenBudget: Int?

    public init(
        concurrency: Int = 2, lease: Duration = .seconds(30), heartbeat: Duration = .seconds(5),
        shutdownGrace: Duration = .seconds(30), claudePath: String, upstreamBaseURL: String? = nil,
        apiKey: String? = nil, agentEnvironment: [String: String] = [:], maxOutputBytes: Int = 64 << 20,
        maxEventLogBytes: Int64 = WorkerConfiguration.defaultMaxEventLogBytes, keepRuns: Bool = false,
        limits: ResourceLimits = ResourceLimits(), tokenBudget: Int? = nil
    ) {
        self.concurrency = concurrency
        self.lease = lease
        self.heartbeat = heartbeat
        self.shutdownGrace = shutdownGrace
        self.claudePath = claudePath
        self.upstreamBaseURL = upstreamBaseURL
        self.apiKey = apiKey
        self.agentEnvironment = agentEnvironment
        self.maxOutputBytes = maxOutputBytes
        self.maxEventLogBytes = maxEventLogBytes
        self.keepRuns = keepRuns
        self.limits = limits
        self.tokenBudget = tokenBudget
    }

    /// The CLI installed by `scripts/setup.sh`, relative to the working directory, unless
    /// `JOBSERVER_CLAUDE_PATH` names another.
    public static func defaultClaudePath(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let path = environment["JOBSERVER_CLAUDE_PATH"], !path.isEmpty { return path }
        let installed = ".tools/claude-agent-sdk/claude_agent_sdk/_bundled/claude"
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? ".").resolvingSymlinksInPath()
        // .build/<config>/jobserver → the package root three levels up.
        let packageRoot = executable.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for candidate in [FileManager.default.currentDirectoryPath + "/" + installed, packageRoot.path + "/" + installed]
        where FileManager.default.isExecutableFile(atPath: candidate) {
            return candidate
        }
        return installed
    }

    /// 32 MiB: room for a long session with token deltas, while a runaway agent stops well
    /// before it hurts the store.
    public static let defaultMaxEventLogBytes: Int64 = 32 << 20

    /// Variables of the worker's environment that are forwarded to the agent when set.
    static let forwardedVariables = ["CLAUDE_CODE_MAX_RETRIES", "API_TIMEOUT_MS", "ANTHROPIC_MODEL"]
}
