import Foundation

/// A daily budget a user has used up.
public struct BudgetExhaustion: Sendable, Hashable {
    public enum Budget: String, Sendable, Hashable, CaseIterable {
        case dailyTokens = "daily_tokens"
        case dailyCostUSD = "daily_cost_usd"
    }

    public var budget: Budget
    /// The budget, in tokens or millionths of a dollar.
    public var limit: Int64
    /// Today's usage, in the same unit.
    public var used: Int64
    /// Midnight UTC, when the budget starts over.
    public var resetsAt: Date

    public init(budget: Budget, limit: Int64, used: Int64, resetsAt: Date) {
        self.budget = budget
        self.limit = limit
        self.used = used
        self.resetsAt = resetsAt
    }

    /// The first budget of `limits` that `used` has reached (`orCrossed == false`: a job may
    /// not start) or gone past (`orCrossed == true`: a running job must stop).
    public static func first(limits: UserLimits, used: MeteredUsage, now: Date, crossed: Bool) -> BudgetExhaustion? {
        let checks: [(Budget, Int64?, Int64)] = [
            (.dailyTokens, limits.dailyTokens, used.tokens),
            (.dailyCostUSD, limits.dailyCostMicroUSD, used.costMicroUSD),
        ]
        for (budget, limit, amount) in checks {
            guard let limit else { continue }
            if crossed ? amount > limit : amount >= limit {
                return BudgetExhaustion(budget: budget, limit: limit, used: amount, resetsAt: UsageDay.nextReset(after: now))
            }
        }
        return nil
    }

    /// `details` of the error: `budget` names it; `limit` and `used` are tokens, or dollars
    /// for the cost budget; `resets_at` is the next midnight UTC.
    public var details: JSONValue {
        func amount(_ value: Int64) -> JSONValue {
            budget == .dailyCostUSD ? .number(Double(value) / 1_000_000) : .number(Double(value))
        }
        return .object([
            "budget": .string(budget.rawValue), "limit": amount(limit), "used": amount(used),
            "resets_at": .string(resetsAt.formatted(.iso8601)),
        ])
    }

    var what: String { budget == .dailyTokens ? "daily token budget" : "daily spend budget" }

    /// `E002` for a job that may not start, `E008` for one stopped while running.
    public func jobError(stopped: Bool) -> JobError {
        stopped
            ? JobError(.resourceLimit, "the job was stopped: it used up its user's \(what)", details: details)
            : JobError(.rateLimit, "the user's \(what) is used up until \(resetsAt.formatted(.iso8601))", details: details)
    }
}

/// Why a submission was not admitted. Every case is `E002 RATE_LIMIT` (429) except a full
/// queue, `E015 QUEUE_FULL` (503); each carries how long to wait and the rate state to show.
public enum LimitRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    /// Over the submission rate.
    case rate(retryAfterSeconds: Int, status: RateLimitStatus)
    /// The user already has `limit` cost units waiting.
    case tooManyQueued(limit: Int, queued: Int, status: RateLimitStatus?)
    /// A daily budget is used up.
    case budget(BudgetExhaustion, status: RateLimitStatus?)
    /// The whole queue holds `limit` jobs.
    case queueFull(limit: Int, status: RateLimitStatus?)

    public var code: ErrorCode {
        if case .queueFull = self { return .queueFull }
        return .rateLimit
    }

    /// Whole seconds a client should wait before trying again (`Retry-After`).
    public func retryAfterSeconds(now: Date) -> Int {
        switch self {
        case .rate(let seconds, _): max(1, seconds)
        case .tooManyQueued, .queueFull: Admission.drainRetryAfterSeconds
        case .budget(let exhaustion, _): max(1, Int(exhaustion.resetsAt.timeIntervalSince(now).rounded(.up)))
        }
    }

    /// The user's rate limit state, for the `RateLimit` header fields.
    public var status: RateLimitStatus? {
        switch self {
        case .rate(_, let status): status
        case .tooManyQueued(_, _, let status), .budget(_, let status), .queueFull(_, let status): status
        }
    }

    public var message: String {
        switch self {
        case .rate: "too many submissions: over the rate limit"
        case .tooManyQueued(let limit, _, _): "too many queued jobs: at most \(limit) cost units may wait per user"
        case .budget(let exhaustion, _): exhaustion.jobError(stopped: false).message
        case .queueFull(let limit, _): "the queue is full (\(limit) jobs waiting); try again later"
        }
    }

    /// `details` of the error envelope.
    public func details(now: Date) -> JSONValue {
        switch self {
        case .rate(let seconds, let status):
            .object(["limit": .string("rate"), "retry_after_s": .number(Double(max(1, seconds))),
                     "burst": .number(Double(status.quota))])
        case .tooManyQueued(let limit, let queued, _):
            .object(["limit": .string("max_queued"), "max_queued": .number(Double(limit)), "queued": .number(Double(queued))])
        case .budget(let exhaustion, _):
            exhaustion.details
        case .queueFull(let limit, _):
            .object(["limit": .string("queue_depth"), "max_queue_depth": .number(Double(limit))])
        }
    }

    public var description: String { "\(code.rawValue) \(message)" }
}
