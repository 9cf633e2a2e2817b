/// What the worker asks a launcher to run: one agent process for one job.
///
/// Paths are host paths. A launcher decides how the agent sees them: the direct launcher runs
/// the agent in `workspace` as it is; the sandbox maps it to `/workspace`.
public struct LaunchRequest: Sendable, Hashable {
    /// The job this process belongs to (names cgroups, logs, scratch files).
    public var jobID: String
    /// Whose workspace this is; a sandbox maps each user to a distinct unprivileged uid.
    public var userKey: String
    /// Absolute path of the agent executable.
    public var executable: String
    public var arguments: [String]
    /// The agent's whole environment; nothing of the worker's is inherited.
    public var environment: [String: String]
    /// The job's copy of the project, read-write for the agent.
    public var workspace: String
    /// An empty directory private to this job, used as `$HOME`.
    public var home: String
    /// A directory private to this job for the launcher's own files (rusage report).
    public var scratch: String
    public var limits: ResourceLimits
    /// Where this job's model gateway listens; the launcher points the agent's
    /// `ANTHROPIC_BASE_URL` at it the way its isolation allows. `nil`: no gateway (the
    /// environment's `ANTHROPIC_BASE_URL`, if any, is used as it is).
    public var modelGateway: ModelGatewayAddress?

    public init(
        jobID: String, userKey: String, executable: String, arguments: [String],
        environment: [String: String], workspace: String, home: String, scratch: String,
        limits: ResourceLimits = ResourceLimits(), modelGateway: ModelGatewayAddress? = nil
    ) {
        self.jobID = jobID
        self.userKey = userKey
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workspace = workspace
        self.home = home
        self.scratch = scratch
        self.limits = limits
        self.modelGateway = modelGateway
    }
}

/// How a job's model gateway can be reached from the host.
public struct ModelGatewayAddress: Sendable, Hashable {
    /// A Unix socket: what the sandbox binds in and forwards to from 127.0.0.1 inside.
    public var socketPath: String?
    /// A TCP port on 127.0.0.1: what an unsandboxed agent connects to.
    public var port: Int?

    public init(socketPath: String? = nil, port: Int? = nil) {
        self.socketPath = socketPath
        self.port = port
    }
}

/// Kernel-enforced limits for an agent's process tree. `nil` leaves a limit unset.
public struct ResourceLimits: Sendable, Hashable {
    /// Address space per process (RLIMIT_AS); the CLI's runtime reserves a lot of virtual
    /// memory, so this is generous and the cgroup memory limit is the real bound.
    public var addressSpaceBytes: UInt64?
    public var maxProcesses: UInt64?
    public var openFiles: UInt64?
    public var cpuSeconds: UInt64?
    public var fileSizeBytes: UInt64?

    public init(
        addressSpaceBytes: UInt64? = nil, maxProcesses: UInt64? = nil, openFiles: UInt64? = 4096,
        cpuSeconds: UInt64? = nil, fileSizeBytes: UInt64? = 1 << 30
    ) {
        self.addressSpaceBytes = addressSpaceBytes
        self.maxProcesses = maxProcesses
        self.openFiles = openFiles
        self.cpuSeconds = cpuSeconds
        self.fileSizeBytes = fileSizeBytes
    }
}
