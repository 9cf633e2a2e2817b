import Foundation

/// The seam between the worker and the isolation technology.
///
/// A launcher turns a `LaunchRequest` into a concrete command (usually `jobserver-launch`
/// with options) that the `ProcessSupervisor` runs. Preparing may create per-job resources
/// (cgroups, a root filesystem); `PreparedLaunch.cleanup` releases them. Launchers fail
/// closed: if any isolation step cannot be done, `prepare` throws and nothing runs.
public protocol AgentLauncher: Sendable {
    /// A short name for logs and job metrics (`"direct"`, `"sandbox"`).
    var name: String { get }

    /// How the agents it starts can reach the job's model gateway.
    var gatewayTransport: GatewayTransport { get }

    func prepare(_ request: LaunchRequest) async throws(LaunchError) -> PreparedLaunch
}

/// A command ready to spawn, plus what to undo afterwards.
public struct PreparedLaunch: Sendable {
    public var executable: String
    public var arguments: [String]
    public var environment: [String: String]
    public var workingDirectory: String
    /// Where the launcher writes its resource-usage report, if it does.
    public var rusageFile: String?
    public var cleanup: @Sendable () async -> Void

    public init(
        executable: String, arguments: [String], environment: [String: String], workingDirectory: String,
        rusageFile: String? = nil, cleanup: @escaping @Sendable () async -> Void = {}
    ) {
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.rusageFile = rusageFile
        self.cleanup = cleanup
    }
}

/// Why an agent could not be launched. Always reported as `E006 SANDBOX_VIOLATION`: a launch
/// that cannot be isolated as configured is refused, never downgraded.
public struct LaunchError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) { self.message = message }

    /// Fails closed before anything runs when the launch helper or the agent is missing.
    static func checkExecutables(helper: String, agent: String) throws(LaunchError) {
        guard FileManager.default.isExecutableFile(atPath: helper) else {
            throw LaunchError("launch helper not found or not executable at \(helper)")
        }
        guard FileManager.default.isExecutableFile(atPath: agent) else {
            throw LaunchError("agent not found or not executable at \(agent)")
        }
    }

    public var description: String { message }
}

/// How an agent reaches its job's model gateway, which decides what the gateway listens on.
public enum GatewayTransport: Sendable, Hashable {
    /// A Unix socket the launcher makes visible inside the agent's isolation.
    case unixSocket
    /// A port on the host's 127.0.0.1 (an unisolated agent shares the host's network).
    case loopbackTCP
}
