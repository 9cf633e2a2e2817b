import Synchronization

/// The counters and token budget of one job, shared by every connection of its gateway.
///
/// One lock around one value: each update is a few additions, far cheaper than the I/O around
/// it, and ``usage`` is always a consistent snapshot.
final class UsageMeter: Sendable {
    /// Budgeted tokens (see ``GatewayUsage/budgetedTokens``) the job may use; `nil` is unlimited.
    let tokenBudget: Int?
    private let state = Mutex(GatewayUsage())
    /// The latest usage after each token report, for whoever follows the job's spend live (the
    /// worker's per-user budget counter); only the newest value is kept.
    let tokenReports: AsyncStream<GatewayUsage>
    private let reports: AsyncStream<GatewayUsage>.Continuation

    init(tokenBudget: Int?) {
        self.tokenBudget = tokenBudget
        (tokenReports, reports) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    deinit {
        reports.finish()
    }

    /// A snapshot of everything counted so far.
    var usage: GatewayUsage { state.withLock { $0 } }

    /// Whether the recorded usage has reached the budget (never, without a budget).
    var budgetExceeded: Bool {
        guard let tokenBudget else { return false }
        return usage.budgetedTokens >= tokenBudget
    }

    /// Applies `change` to the counters, atomically.
    func record(_ change: (inout GatewayUsage) -> Void) {
        state.withLock { change(&$0) }
    }

    /// Adds reported tokens of a reply from `model`, and reports the new usage.
    func add(_ tokens: TokenCounts, model: String?) {
        guard tokens != TokenCounts() else { return }
        let reported = ModelTokens(input: Int64(tokens.input), output: Int64(tokens.output),
                                   cacheCreation: Int64(tokens.cacheCreation), cacheRead: Int64(tokens.cacheRead))
        let usage = state.withLock { usage in
            usage.tokensByModel[model ?? "", default: ModelTokens()] = usage.tokensByModel[model ?? "", default: ModelTokens()] + reported
            return usage
        }
        reports.yield(usage)
    }

    /// Ends ``tokenReports`` (the gateway stopped).
    func finishReports() {
        reports.finish()
    }
}

/// Token counts of one reply (or the part of it not recorded yet).
struct TokenCounts: Sendable, Hashable {
    var input = 0
    var output = 0
    var cacheCreation = 0
    var cacheRead = 0
}
