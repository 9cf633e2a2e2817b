import Foundation

/// Multi-tenant limits kept in the store, so every server and worker process sharing a store
/// enforces the same limits together (DESIGN §3, issue "multi-tenant limits").
///
/// - Submission (`submit(_:admission:)`): the global queue cap, the user's daily budgets,
///   `max_queued` and the GCRA rate are checked and the rate state updated in the same
///   transaction that inserts the job, so N API processes share one limit exactly.
/// - Claiming (`JobStore.claim`): a user's jobs are skipped while `max_running` cost units of
///   theirs run; users with fewer running jobs go first within a priority, so one user's
///   backlog never blocks another's job; a job whose user's daily budget is spent is refused
///   (failed with `E002`, `details.budget`) instead of started.
/// - Running (`chargeUsage`): workers charge a job's model usage as it grows; the answer says
///   whether the user's daily budget has been crossed, so the job can be stopped (`E008`).
///
/// Limits resolve in three levels: the engine's built-in defaults (set when it is opened),
/// the store-wide defaults (`LimitScope.defaults`), and the user's own overrides.
public protocol LimitStore: Sendable {
    /// Stores a new job like `JobStore.submit`, after admitting it.
    /// - Throws: `LimitRefusal` when a limit refuses the job (nothing is stored or spent);
    ///   `StoreError.idempotencyConflict` as `submit` does. An idempotent replay is not
    ///   charged and is answered even when limits would refuse a new job.
    func submit(_ job: NewJob, admission: Admission) async throws -> AdmittedSubmission

    /// Changes the stored overrides of a scope in one transaction and returns them.
    func updateLimits(
        for scope: LimitScope, _ change: @escaping @Sendable (inout LimitOverrides) -> Void
    ) async throws -> LimitOverrides

    /// The stored overrides of a scope (empty when none are stored).
    func limitOverrides(for scope: LimitScope) async throws -> LimitOverrides

    /// The limits in force for a user.
    func limits(of user: UserID) async throws -> UserLimits

    /// What a user uses now: queued and running jobs, today's model usage, the rate state.
    func usage(of user: UserID) async throws -> UserUsage

    /// Sets the model usage of the owner's run of a job (its current attempt under this
    /// lease) to `attemptTotal` — a running total, so repeating a charge is harmless and a
    /// final exact figure may replace an estimate — and adds the difference to the user's
    /// usage of the current UTC day.
    /// - Returns: whether the user's daily budgets still hold after the charge.
    /// - Throws: `StoreError.leaseLost` unless `owner` holds the job's lease.
    func chargeUsage(_ id: JobID, owner: String, attemptTotal: MeteredUsage) async throws -> BudgetCheck
}

/// How a submission is admitted.
public struct Admission: Sendable, Hashable {
    /// Whether the user's own limits (rate, `max_queued`, daily budgets) apply.
    public var userLimits: Bool
    /// Most jobs waiting in the whole queue; `nil` is no cap.
    public var maxQueueDepth: Int?

    public init(userLimits: Bool = true, maxQueueDepth: Int? = nil) {
        self.userLimits = userLimits
        self.maxQueueDepth = maxQueueDepth
    }

    /// Suggested wait after `E015` or `max_queued`: the queue drains at the workers' pace,
    /// which the store cannot predict, so clients get a fixed, short hint.
    public static let drainRetryAfterSeconds = 5
}

/// A stored (or idempotently replayed) submission and the rate limit state after it.
public struct AdmittedSubmission: Sendable, Hashable {
    public var outcome: SubmitOutcome
    /// The user's rate limit after this submission; `nil` when the rate is unlimited, limits
    /// were not applied, or the answer is a replay.
    public var rate: RateLimitStatus?

    public init(outcome: SubmitOutcome, rate: RateLimitStatus?) {
        self.outcome = outcome
        self.rate = rate
    }
}

/// Model usage in the two units budgets count.
public struct MeteredUsage: Sendable, Hashable {
    /// Input + output + cache-creation tokens (cache reads are reported but not charged,
    /// as the model gateway's per-job budget counts them).
    public var tokens: Int64
    /// Spend in millionths of a US dollar.
    public var costMicroUSD: Int64

    public init(tokens: Int64 = 0, costMicroUSD: Int64 = 0) {
        self.tokens = tokens
        self.costMicroUSD = costMicroUSD
    }

    /// Dollars as millionths, rounded to the nearest.
    public static func micros(usd: Double) -> Int64 {
        guard usd.isFinite else { return 0 }
        return Int64((usd * 1_000_000).rounded())
    }
}

/// A user's current consumption of their limits.
public struct UserUsage: Sendable, Hashable {
    public var queuedJobs: Int
    public var queuedCost: Int
    public var runningJobs: Int
    public var runningCost: Int
    /// The UTC day the daily figures are for (its first instant).
    public var day: Date
    public var today: MeteredUsage
    /// The rate limit state now; `nil` when the rate is unlimited.
    public var rate: RateLimitStatus?

    public init(queuedJobs: Int, queuedCost: Int, runningJobs: Int, runningCost: Int, day: Date,
                today: MeteredUsage, rate: RateLimitStatus?) {
        self.queuedJobs = queuedJobs
        self.queuedCost = queuedCost
        self.runningJobs = runningJobs
        self.runningCost = runningCost
        self.day = day
        self.today = today
        self.rate = rate
    }
}

/// Whether a user's daily budgets hold.
public enum BudgetCheck: Sendable, Hashable {
    case within
    case exceeded(BudgetExhaustion)
}

/// Daily budgets reset at midnight UTC; days are numbered from the Unix epoch.
public enum UsageDay {
    static let millisPerDay: Int64 = 86_400_000

    public static func index(of date: Date) -> Int64 {
        let millis = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        return millis >= 0 ? millis / millisPerDay : (millis - millisPerDay + 1) / millisPerDay
    }

    public static func start(of index: Int64) -> Date {
        Date(timeIntervalSince1970: Double(index * millisPerDay) / 1000)
    }

    /// The next midnight UTC after `date`.
    public static func nextReset(after date: Date) -> Date {
        start(of: index(of: date) + 1)
    }
}
