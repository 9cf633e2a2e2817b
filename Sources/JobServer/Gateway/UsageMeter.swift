import Synchronization

/// The counters and token budget of one job, shared by every connection of its gateway.
///
/// One lock around one value: each update is a few additions, far cheaper than the I/O around
/// it, and ``usage`` is always a consistent snapshot.
final class UsageMeter: Sendable {
    /// Budgeted tokens (see ``GatewayUsage/budgetedTokens``) the job may use; `nil` is unlimited.
    let tokenBudget: Int?
    private let state = Mutex(GatewayUsage())

    init(tokenBudget: Int?) {
        self.tokenBudget = tokenBudget
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

    /// Adds reported tokens.
    func add(_ tokens: TokenCounts) {
        guard tokens != TokenCounts() else { return }
        record {
            $0.inputTokens += tokens.input
            $0.outputTokens += tokens.output
            $0.cacheCreationInputTokens += tokens.cacheCreation
            $0.cacheReadInputTokens += tokens.cacheRead
        }
    }
}

/// Token counts of one reply (or the part of it not recorded yet).
struct TokenCounts: Sendable, Hashable {
    var input = 0
    var output = 0
    var cacheCreation = 0
    var cacheRead = 0
}
