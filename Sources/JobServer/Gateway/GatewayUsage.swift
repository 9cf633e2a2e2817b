/// What one job did through its model gateway so far: a value snapshot, safe to keep and compare.
///
/// Token counts are those the upstream reported (`usage` of JSON replies, `message_start` and
/// `message_delta` of streamed ones), summed over every forwarded `/v1/messages` call.
public struct GatewayUsage: Sendable, Hashable {
    /// `input_tokens` (uncached input).
    public var inputTokens = 0
    /// `output_tokens`.
    public var outputTokens = 0
    /// `cache_creation_input_tokens` (input written to the prompt cache).
    public var cacheCreationInputTokens = 0
    /// `cache_read_input_tokens` (input served from the prompt cache; not counted in the budget).
    public var cacheReadInputTokens = 0
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
    /// The same tokens by the model that answered (`""` when a reply named none), so spend can
    /// be priced per model.
    public var tokensByModel: [String: ModelTokens] = [:]

    /// Creates an all-zero snapshot.
    public init() {}

    /// The tokens the budget counts: input + output + cache creation. Cache reads are cheap
    /// and already paid for by the creation, so they are reported but not charged.
    public var budgetedTokens: Int { inputTokens + outputTokens + cacheCreationInputTokens }
}
