import Foundation
import GRDB

/// Admits the submissions of one group-commit batch inside the batch's write transaction.
///
/// Everything a limit needs is read once per batch and user (limits, counters, GCRA state,
/// today's usage) and kept up to date in memory as the batch's jobs are admitted, so the
/// limiter adds a few indexed reads per batch rather than per job, and one write per user whose
/// rate state moved. Because the reads and the writes share the transaction that inserts the
/// jobs, any number of server processes enforce one limit together: SQLite serializes the
/// transactions, and each one sees every earlier one's jobs and state.
struct SQLiteAdmission {
    let db: Database
    let now: Date
    let builtin: UserLimits
    private let nowMicros: Int64
    private let day: Int64
    private var defaults: UserLimits?
    private var users: [UserID: UserState] = [:]
    private var depth: Int?

    private struct UserState {
        var limits: UserLimits
        var queuedCost: Int?
        var tat: Int64?
        var tatLoaded = false
        var tatChanged = false
        var today: MeteredUsage?
    }

    /// What admitting one job decided.
    struct Admitted {
        /// The job's cost units.
        var cost: Int
        /// The user's rate state after the job; `nil` without a rate limit.
        var rate: RateLimitStatus?
    }

    init(db: Database, now: Date, builtin: UserLimits) {
        self.db = db
        self.now = now
        self.builtin = builtin
        self.nowMicros = SQLiteLimitRows.micros(now)
        self.day = UsageDay.index(of: now)
    }

    /// Decides one job. Without an `admission` the job is only costed (and counted, so later
    /// jobs of the batch see it).
    /// - Throws: `LimitRefusal`; nothing of the refused job is kept.
    mutating func admit(_ job: NewJob, _ admission: Admission?) throws -> Admitted {
        var state = try userState(job.userID)
        let cost = state.limits.cost(of: job.kind)
        var rate: RateLimitStatus?
        if let admission {
            rate = try check(job.userID, cost: cost, admission, &state)
        }
        if let queued = state.queuedCost { state.queuedCost = queued + cost }
        if let depth { self.depth = depth + 1 }
        users[job.userID] = state
        return Admitted(cost: cost, rate: rate)
    }

    /// Applies the admission's limits in a fixed order (queue cap, budgets, `max_queued`, rate),
    /// so a job refused for any reason spends no rate.
    private mutating func check(_ user: UserID, cost: Int, _ admission: Admission, _ state: inout UserState) throws -> RateLimitStatus? {
        let limiter = admission.userLimits ? state.limits.limiter : nil
        if limiter != nil, !state.tatLoaded {
            state.tat = try SQLiteLimitRows.tat(db, user: user)
            state.tatLoaded = true
        }
        let peek = limiter.map { $0.status(tat: state.tat, now: nowMicros) }
        if let cap = admission.maxQueueDepth {
            let depth = try self.depth ?? SQLiteLimitRows.queueDepth(db)
            self.depth = depth
            if depth >= cap { throw LimitRefusal.queueFull(limit: cap, status: peek) }
        }
        guard admission.userLimits else { return nil }
        if state.limits.dailyTokens != nil || state.limits.dailyCostMicroUSD != nil {
            let used = try state.today ?? SQLiteLimitRows.usage(db, user: user, day: day)
            state.today = used
            if let spent = BudgetExhaustion.first(limits: state.limits, used: used, now: now, crossed: false) {
                throw LimitRefusal.budget(spent, status: peek)
            }
        }
        if let maxQueued = state.limits.maxQueued {
            let queued = try state.queuedCost ?? SQLiteLimitRows.counters(db, user: user).queuedCost
            state.queuedCost = queued
            if queued > 0, queued + cost > maxQueued {
                throw LimitRefusal.tooManyQueued(limit: maxQueued, queued: queued, status: peek)
            }
        }
        guard let limiter else { return nil }
        let decision = limiter.decide(tat: state.tat, now: nowMicros, cost: cost)
        guard decision.allowed else {
            throw LimitRefusal.rate(retryAfterSeconds: GCRA.wholeSeconds(decision.retryAfterMicros), status: decision.status)
        }
        state.tat = decision.tat
        state.tatChanged = true
        return decision.status
    }

    /// Writes the rate state of every user whose bucket moved.
    func persist() throws {
        for (user, state) in users where state.tatChanged {
            if let tat = state.tat { try SQLiteLimitRows.setTAT(db, user: user, tat) }
        }
    }

    private mutating func userState(_ user: UserID) throws -> UserState {
        if let state = users[user] { return state }
        let defaults = try self.defaults ?? SQLiteLimitRows.defaults(db, builtin: builtin)
        self.defaults = defaults
        return UserState(limits: try SQLiteLimitRows.limits(db, user: user, defaults: defaults))
    }
}
