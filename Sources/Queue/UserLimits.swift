import Foundation

/// The limits that apply to one user, fully resolved (built-in defaults, then the store-wide
/// defaults, then the user's own overrides). `nil` means "no limit".
///
/// Counting limits (`maxRunning`, `maxQueued`, the rate) are in *cost units*: each job kind
/// costs `cost(of:)` units (1 unless configured), so a `generate` can weigh more than an
/// `analyze`. A job always fits when its user has nothing of that kind in use, so a kind that
/// costs more than a limit still runs, alone.
public struct UserLimits: Sendable, Hashable {
    /// Sustained submission rate; `nil` is unlimited.
    public var rate: RatePolicy?
    /// Units a user may submit at once before the sustained rate applies.
    public var burst: Int
    /// Cost units of one user's jobs that may run at once.
    public var maxRunning: Int?
    /// Cost units of one user's jobs that may wait in the queue.
    public var maxQueued: Int?
    /// Model tokens (input + output + cache creation) per UTC day.
    public var dailyTokens: Int64?
    /// Model spend per UTC day, in millionths of a US dollar.
    public var dailyCostMicroUSD: Int64?
    /// Bytes of all the user's project workspaces together.
    public var diskQuotaBytes: Int64?
    /// Cost units per job kind; kinds not listed cost 1.
    public var kindCosts: [String: Int]

    public init(
        rate: RatePolicy?, burst: Int, maxRunning: Int?, maxQueued: Int?, dailyTokens: Int64? = nil,
        dailyCostMicroUSD: Int64? = nil, diskQuotaBytes: Int64? = nil, kindCosts: [String: Int] = [:]
    ) {
        self.rate = rate
        self.burst = max(1, burst)
        self.maxRunning = maxRunning
        self.maxQueued = maxQueued
        self.dailyTokens = dailyTokens
        self.dailyCostMicroUSD = dailyCostMicroUSD
        self.diskQuotaBytes = diskQuotaBytes
        self.kindCosts = kindCosts
    }

    /// No limits at all: what a bare store applies when nothing is configured (embedded use,
    /// tests). The service's processes start from `standard` instead.
    public static let unlimited = UserLimits(rate: nil, burst: 1, maxRunning: nil, maxQueued: nil)

    /// The service's defaults, sensible for a small team: 60 submissions a minute with bursts
    /// of 10, 2 jobs running and 100 waiting per user, 1 GiB of workspaces, no spend budgets.
    public static let standard = UserLimits(
        rate: .perMinute(60), burst: 10, maxRunning: 2, maxQueued: 100, diskQuotaBytes: 1 << 30)

    /// The cost units of a job of `kind`.
    public func cost(of kind: String) -> Int { max(1, kindCosts[kind] ?? 1) }

    /// The rate limiter, when the rate is limited.
    public var limiter: GCRA? { rate.map { GCRA(policy: $0, burst: burst) } }
}

/// One stored limit: inherit it from the level below, lift it, or set it.
public enum LimitSetting<Value: Sendable & Hashable>: Sendable, Hashable {
    case inherit
    case unlimited
    case value(Value)

    /// `base` with this setting applied.
    public func applied(to base: Value?) -> Value? {
        switch self {
        case .inherit: base
        case .unlimited: nil
        case .value(let value): value
        }
    }
}

/// The limits stored for one user, or for every user (`LimitScope.defaults`): each field
/// either inherits or overrides the level below.
public struct LimitOverrides: Sendable, Hashable {
    public var rate: LimitSetting<RatePolicy> = .inherit
    /// `.unlimited` is meaningless for a burst and is treated as `.inherit`.
    public var burst: LimitSetting<Int> = .inherit
    public var maxRunning: LimitSetting<Int> = .inherit
    public var maxQueued: LimitSetting<Int> = .inherit
    public var dailyTokens: LimitSetting<Int64> = .inherit
    public var dailyCostMicroUSD: LimitSetting<Int64> = .inherit
    public var diskQuotaBytes: LimitSetting<Int64> = .inherit
    /// Per-kind costs that replace the level below's, kind by kind.
    public var kindCosts: [String: Int] = [:]

    public init() {}

    /// `base` with every set field replaced.
    public func applied(to base: UserLimits) -> UserLimits {
        var limits = base
        limits.rate = rate.applied(to: base.rate)
        if case .value(let burst) = burst { limits.burst = max(1, burst) }
        limits.maxRunning = maxRunning.applied(to: base.maxRunning)
        limits.maxQueued = maxQueued.applied(to: base.maxQueued)
        limits.dailyTokens = dailyTokens.applied(to: base.dailyTokens)
        limits.dailyCostMicroUSD = dailyCostMicroUSD.applied(to: base.dailyCostMicroUSD)
        limits.diskQuotaBytes = diskQuotaBytes.applied(to: base.diskQuotaBytes)
        limits.kindCosts.merge(kindCosts) { _, new in new }
        return limits
    }

    /// Whether nothing is overridden.
    public var isEmpty: Bool { self == LimitOverrides() }
}

/// Whose limits: one user's, or the store-wide defaults every user inherits.
public enum LimitScope: Sendable, Hashable {
    case defaults
    case user(UserID)
}
