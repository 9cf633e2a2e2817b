/// A model gateway while it runs: where it listens, what the agent must present, and what the
/// job has used so far. Handed to the body of ``withModelGateway(_:httpClient:logger:body:)``.
public struct RunningGateway: Sendable {
    /// The Unix socket served (mode 0666), if one was asked for; it exists while the body runs.
    public let unixSocketPath: String?
    /// The 127.0.0.1 port served, if loopback TCP was asked for.
    public let tcpPort: Int?
    /// The job-scoped key the agent must send; safe to put in the agent's environment.
    public let placeholderKey: String

    let meter: UsageMeter

    /// `http://127.0.0.1:PORT` for the TCP listener, the agent's `ANTHROPIC_BASE_URL` when it
    /// runs unsandboxed.
    public var tcpBaseURL: String? { tcpPort.map { "http://127.0.0.1:\($0)" } }

    /// A snapshot of the job's usage so far (tokens, requests, refusals, upstream errors, bytes).
    public var usage: GatewayUsage { meter.usage }

    /// Whether the job's token budget is used up: further model calls are refused, and the
    /// worker should fail the job with `E008`.
    public var budgetExceeded: Bool { meter.budgetExceeded }

    /// The usage after each token report while the gateway runs (only the newest is kept); it
    /// ends when the gateway stops.
    var tokenReports: AsyncStream<GatewayUsage> { meter.tokenReports }

    /// The variables that point the agent at the gateway: `ANTHROPIC_BASE_URL` = `baseURL`
    /// (the forwarder's `http://127.0.0.1:PORT` inside a sandbox, ``tcpBaseURL`` outside) and
    /// `ANTHROPIC_API_KEY` = the placeholder. Never the real key.
    public func agentEnvironment(baseURL: String) -> [String: String] {
        ["ANTHROPIC_BASE_URL": baseURL, "ANTHROPIC_API_KEY": placeholderKey]
    }
}
