/// What one job did through its model gateway so far: a value snapshot, safe to keep and compare.
///
/// Token counts are those the upstream reported (`usage` of JSON replies, `message_start` and
/// `message_delta` of streamed ones), summed over every forwarded `/v1/messages` call.
public struct GatewayUsage: Sendable, Hashable {
    /// The tokens by the model that answered (`""` when a reply named none), so spend can be
    /// priced per model.
    public var tokensByModel: [String: ModelTokens] = [:]
    /// Requests forwarded upstream (messages and count_tokens).
    public var requests = 0
    /// Requests the gateway answered itself with an error: bad path, method, host or key,
    /// proxy attempts, budget exhausted, body too large, malformed HTTP.
    public var refusedRequests = 0
    /// Forwarded requests that ended badly upstream: a non-2xx reply, no reply (unreachable,
    /// timeout) or a reply cut off mid-body.
    public var upstreamErrors = 0
    /// Request body bytes sent upstream.
    public var requestBytes = 0
    /// Response body bytes received from upstream.
    public var responseBytes = 0

    /// Creates an all-zero snapshot.
    public init() {}

    /// All models' tokens together.
    public var tokens: ModelTokens { tokensByModel.values.reduce(ModelTokens(), +) }

    /// The tokens the budget counts: input + output + cache creation. Cache reads are cheap
    /// and already paid for by the creation, so they are reported but not charged.
    public var budgetedTokens: Int { Int(tokens.budgeted) }
}
