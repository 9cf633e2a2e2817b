import Foundation
import Sandbox
import TestSupport

/// What a program run in the real sandbox printed, and how it ended.
struct SandboxRun: Sendable {
    var report: ProcessReport
    var lines: [String]

    var output: String { lines.joined(separator: "\n") }

    /// The value of the probe line `name: VALUE` that `sandbox-probe` prints.
    func probe(_ name: String) -> String? {
        lines.first { $0.hasPrefix(name + ": ") }.map { String($0.dropFirst(name.count + 2)) }
    }
}

enum SandboxFixture {
    static let launcher = BuildProducts.path(of: "jobserver-launch")
    static let probe = BuildProducts.path(of: "sandbox-probe")
    static var isRoot: Bool { geteuid() == 0 }

    /// Whether a cgroup v2 hierarchy is mounted at `path`.
    static func isCgroup2(_ path: String) -> Bool {
        let mounts = (try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8)) ?? ""
        return mounts.split(separator: "\n").contains { $0.hasPrefix("cgroup2 \(path) ") }
    }
    /// What a direct call of the launcher needs: a root caller names an unprivileged uid.
    static var identityArguments: [String] {
        isRoot ? ["--map-uid", "1500000001", "--map-gid", "1500000001"] : []
    }

    /// Small limits, so the limit tests end quickly; cgroups as the worker would use them
    /// (required as root, where delegated otherwise).
    static let configuration = SandboxConfiguration(
        memoryBytes: 256 << 20, maxProcesses: 64, tmpBytes: 8 << 20, homeBytes: 4 << 20)

    /// Runs `executable` (a host path, bound in as the agent) with `arguments` in a sandbox
    /// whose workspace is `workspace` (a fresh one when nil).
    static func run(
        _ executable: String, _ arguments: [String], workspace: String? = nil, userKey: String = "usr_sandbox_a",
        configuration: SandboxConfiguration = configuration, limits: ResourceLimits = ResourceLimits(),
        gatewaySocket: String? = nil, wallClock: Duration = .seconds(60)
    ) async throws -> SandboxRun {
        try await withTemporaryDirectory(prefix: "sandbox-run-") { root in
            let work = workspace ?? root + "/work"
            let scratch = root + "/scratch"
            for directory in [work, scratch] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            }
            let request = LaunchRequest(
                jobID: "job_sandboxtest", userKey: userKey, executable: executable, arguments: arguments,
                environment: ["PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"],
                workspace: work, home: scratch, scratch: scratch, limits: limits,
                modelGateway: gatewaySocket.map { ModelGatewayAddress(socketPath: $0) })
            let prepared = try await SandboxLauncher(helperPath: launcher, configuration: configuration).prepare(request)
            let lines = Locked<[String]>([])
            let report = await ProcessSupervisor().run(
                prepared, limits: SupervisionLimits(wallClock: wallClock, idle: wallClock)
            ) { line in lines.withLock { $0.append(line) } }
            return SandboxRun(report: report, lines: lines.value)
        }
    }

    /// Runs a shell script in the sandbox (`/bin/sh -c SCRIPT`).
    static func shell(_ script: String, workspace: String? = nil, userKey: String = "usr_sandbox_a",
                      configuration: SandboxConfiguration = configuration) async throws -> SandboxRun {
        try await run("/bin/sh", ["-c", script], workspace: workspace, userKey: userKey, configuration: configuration)
    }
}
