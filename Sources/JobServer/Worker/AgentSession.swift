import AsyncHTTPClient
import Foundation
import Logging
import Queue
import Sandbox

/// Everything that exists only while a job's agent runs: the job's model gateway (holding the
/// real API key, DESIGN §5.3), the launch through the launcher seam (the sandbox), and the
/// supervision of the agent's process tree.
///
/// The agent gets the gateway's job-scoped placeholder key and, through its launcher, a
/// loopback URL that reaches the gateway; the worker's real key never enters its environment.
struct AgentSession: Sendable {
    let launcher: any AgentLauncher
    let httpClient: HTTPClient
    let configuration: WorkerConfiguration
    let logger: Logger

    /// How the session went. `failure` is set when the agent never ran.
    struct Outcome: Sendable {
        var report: ProcessReport?
        var usage = GatewayUsage()
        var budgetExceeded = false
        var failure: JobError?
    }

    /// Runs the agent described by `request` to its end; `onLine` gets each line of its output.
    /// `usage` follows the gateway's token count while the agent runs, and gets its final
    /// count before this returns.
    func run(
        _ request: LaunchRequest, limits: SupervisionLimits, control: ProcessControl,
        usage: (any ModelUsageSink)? = nil, onLine: @escaping @Sendable (String) async -> Void
    ) async -> Outcome {
        let socketPath = launcher.gatewayTransport == .unixSocket ? Self.socketPath(scratch: request.scratch) : nil
        defer {
            if let socketPath, !socketPath.hasPrefix(request.scratch + "/") {
                rmdir((socketPath as NSString).deletingLastPathComponent)
            }
        }
        let gatewayConfiguration: GatewayConfiguration
        do {
            gatewayConfiguration = try GatewayConfiguration(
                worker: configuration, unixSocketPath: socketPath,
                listensOnLoopbackTCP: launcher.gatewayTransport == .loopbackTCP)
        } catch {
            return Outcome(failure: JobError(
                .apiError, "the agent has no model credentials: set ANTHROPIC_API_KEY for the worker",
                details: .object(["upstream": .string("not_logged_in")])))
        }
        do {
            return try await withModelGateway(gatewayConfiguration, httpClient: httpClient, logger: logger) { gateway in
                var request = request
                request.environment["ANTHROPIC_API_KEY"] = gateway.placeholderKey
                request.modelGateway = ModelGatewayAddress(socketPath: gateway.unixSocketPath, port: gateway.tcpPort)
                let prepared: PreparedLaunch
                do {
                    prepared = try await launcher.prepare(request)
                } catch {
                    return Outcome(failure: JobError(.sandboxViolation, "sandbox set-up refused: \(error)"))
                }
                let report = await withTaskGroup(of: Void.self) { group in
                    if let usage {
                        group.addTask {
                            for await counted in gateway.tokenReports { await usage.observe(gateway: counted) }
                        }
                    }
                    let report = await ProcessSupervisor().run(prepared, limits: limits, control: control, onLine: onLine)
                    group.cancelAll()
                    return report
                }
                await usage?.observe(gateway: gateway.usage)
                await prepared.cleanup()
                return Outcome(report: report, usage: gateway.usage, budgetExceeded: gateway.budgetExceeded)
            }
        } catch {
            return Outcome(failure: JobError(.internal, "the job's model gateway could not start: \(error)"))
        }
    }

    /// The gateway's socket in the run's private scratch directory, unless that path is too
    /// long for a Unix socket address (108 bytes); then in a private directory under /tmp.
    static func socketPath(scratch: String) -> String {
        let inScratch = scratch + "/model.sock"
        if inScratch.utf8.count < 100 { return inScratch }
        var template = Array("/tmp/jobserver-gw-XXXXXX".utf8CString)
        let directory = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) }
        return (directory ?? scratch) + "/model.sock"
    }
}
