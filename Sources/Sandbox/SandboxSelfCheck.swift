import Foundation

/// Starts one sandbox with `true` inside, the way every job's sandbox starts, so a worker on
/// a host where the sandbox cannot work (no unprivileged user namespaces, cgroups required but
/// not delegated, a missing helper) says why at start instead of failing each job with E006.
public enum SandboxSelfCheck {
    /// `nil` when a sandbox starts and `true` exits 0 in it; otherwise the reason.
    public static func run(_ launcher: SandboxLauncher, program: String = "/bin/true") async -> String? {
        let root = FileManager.default.temporaryDirectory.path + "/jobserver-selfcheck-" + UUID().uuidString
        let workspace = root + "/work", scratch = root + "/scratch"
        defer { try? FileManager.default.removeItem(atPath: root) }
        do {
            for directory in [workspace, scratch] {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                        attributes: [.posixPermissions: 0o700])
            }
        } catch {
            return "cannot create a scratch directory: \(error)"
        }
        let request = LaunchRequest(
            jobID: "selfcheck", userKey: "selfcheck", executable: program, arguments: [],
            environment: ["PATH": "/usr/bin:/bin"], workspace: workspace, home: scratch, scratch: scratch)
        let prepared: PreparedLaunch
        do {
            prepared = try await launcher.prepare(request)
        } catch {
            return error.message
        }
        let report = await ProcessSupervisor().run(
            prepared, limits: SupervisionLimits(wallClock: .seconds(30), idle: .seconds(30))) { _ in }
        if report.exitCode == 0 { return nil }
        let reason = report.stderrTail.split(separator: "\n").last.map(String.init) ?? "\(report.termination)"
        return reason.isEmpty ? "the sandbox ended with \(report.termination)" : reason
    }
}
