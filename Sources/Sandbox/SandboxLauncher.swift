import Foundation

/// Runs the agent inside the sandbox of DESIGN §6 through `jobserver-launch --sandbox`: its
/// own user, mount, PID, network, IPC, UTS and cgroup namespaces, a new root of read-only
/// system directories with the job's workspace at `/workspace`, no capabilities, the seccomp
/// filter, cgroup and rlimit limits, and the model gateway as its only way out.
///
/// What the agent sees: the CLI at `/opt/jobserver/agent`, `HOME=/home/agent` (tmpfs),
/// `/tmp` (tmpfs), and `ANTHROPIC_BASE_URL=http://127.0.0.1:<gatewayPort>`, which the
/// sandbox's init forwards to the job's gateway socket. Fails closed: the launcher refuses to
/// start anything if any step fails (exit 125, reported as E006).
public struct SandboxLauncher: AgentLauncher {
    public let name = "sandbox"
    public let gatewayTransport = GatewayTransport.unixSocket
    /// The `jobserver-launch` helper binary.
    public let helperPath: String
    public let configuration: SandboxConfiguration

    /// Where the agent binary appears inside the sandbox.
    public static let agentPath = "/opt/jobserver/agent"
    public static let workspacePath = "/workspace"
    public static let homePath = "/home/agent"

    public init(helperPath: String, configuration: SandboxConfiguration = SandboxConfiguration()) {
        self.helperPath = helperPath
        self.configuration = configuration
    }

    public func prepare(_ request: LaunchRequest) async throws(LaunchError) -> PreparedLaunch {
        try LaunchError.checkExecutables(helper: helperPath, agent: request.executable)
        // The launcher binds files without following a final symlink (`/bin/sh` → dash): bind
        // what the link names.
        let executable = URL(fileURLWithPath: request.executable).resolvingSymlinksInPath().path
        let ids = configuration.hostIDs(for: request.userKey)
        let rusageFile = request.scratch + "/rusage.json"
        var arguments = [
            "--sandbox", "--map-uid", "\(ids.uid)", "--map-gid", "\(ids.gid)",
            "--cwd", Self.workspacePath, "--rusage-file", rusageFile,
            "--bind", request.workspace, Self.workspacePath,
            "--ro-bind", executable, Self.agentPath,
            "--tmpfs", "/tmp", "\(configuration.tmpBytes)",
            "--tmpfs", Self.homePath, "\(configuration.homeBytes)",
        ]
        var environment = request.environment
        environment["HOME"] = Self.homePath
        environment["USER"] = "agent"
        environment["TMPDIR"] = "/tmp"
        if let socket = request.modelGateway?.socketPath {
            arguments += ["--gateway-socket", socket, "--gateway-port", "\(configuration.gatewayPort)"]
            environment["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:\(configuration.gatewayPort)"
        }
        arguments += cgroupArguments(jobID: request.jobID)
        arguments += request.limits.launcherArguments
        arguments += ["--", Self.agentPath] + request.arguments
        return PreparedLaunch(
            executable: helperPath, arguments: arguments, environment: environment,
            workingDirectory: request.scratch, rusageFile: rusageFile)
    }

    /// The limits go to the launcher even with cgroups off: it applies them as rlimits then.
    private func cgroupArguments(jobID: String) -> [String] {
        var arguments = ["--cgroup", configuration.cgroups.rawValue]
        if configuration.cgroups != .off {
            // Unique per launch: a cgroup left by a worker killed with -9 never collides.
            let name = jobID.filter { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
                + "-" + String(UInt64.random(in: 0 ... .max), radix: 36)
            arguments += ["--cgroup-name", name]
            if let root = configuration.cgroupRoot { arguments += ["--cgroup-root", root] }
            if let parent = configuration.cgroupParent { arguments += ["--cgroup-parent", parent] }
        }
        if let memory = configuration.memoryBytes { arguments += ["--memory", "\(memory)"] }
        if let pids = configuration.maxProcesses { arguments += ["--pids", "\(pids)"] }
        if let cpu = configuration.cpuMillis { arguments += ["--cpu-millis", "\(cpu)"] }
        return arguments
    }
}
