import Foundation

/// Runs the agent as a plain child process of the worker, with rlimits, its own process
/// group and the parent-death signal, but **no isolation**: it sees the worker's files,
/// network and user. For development only; the worker refuses it unless started with
/// `--unsafe-direct-agent`.
public struct DirectLauncher: AgentLauncher {
    public let name = "direct"
    public let gatewayTransport = GatewayTransport.loopbackTCP
    /// The `jobserver-launch` helper binary.
    public let helperPath: String

    public init(helperPath: String) {
        self.helperPath = helperPath
    }

    public func prepare(_ request: LaunchRequest) async throws(LaunchError) -> PreparedLaunch {
        try LaunchError.checkExecutables(helper: helperPath, agent: request.executable)
        let rusageFile = request.scratch + "/rusage.json"
        var arguments = ["--cwd", request.workspace, "--rusage-file", rusageFile]
        arguments += request.limits.launcherArguments
        arguments += ["--", request.executable] + request.arguments
        var environment = request.environment
        environment["HOME"] = request.home
        if let port = request.modelGateway?.port { environment["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:\(port)" }
        return PreparedLaunch(
            executable: helperPath, arguments: arguments, environment: environment,
            workingDirectory: request.workspace, rusageFile: rusageFile)
    }
}

extension ResourceLimits {
    /// The `--rlimit` options of `jobserver-launch` for these limits.
    public var launcherArguments: [String] {
        var arguments: [String] = []
        func add(_ name: String, _ value: UInt64?) {
            if let value { arguments += ["--rlimit", "\(name)=\(value)"] }
        }
        add("as", addressSpaceBytes)
        add("nproc", maxProcesses)
        add("nofile", openFiles)
        add("cpu", cpuSeconds)
        add("fsize", fileSizeBytes)
        add("core", 0)
        return arguments
    }
}

/// Finds helper executables built alongside the running binary.
public enum HelperLocator {
    /// `name` in the directory of the running executable, or `override` when given.
    public static func path(of name: String, override: String? = nil) -> String {
        if let override, !override.isEmpty { return override }
        let executable = URL(fileURLWithPath: CommandLine.arguments.first ?? name).resolvingSymlinksInPath()
        let candidates = [
            Bundle.main.executableURL?.deletingLastPathComponent().appendingPathComponent(name).path,
            executable.deletingLastPathComponent().appendingPathComponent(name).path,
        ].compactMap { $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? candidates[0]
    }
}
