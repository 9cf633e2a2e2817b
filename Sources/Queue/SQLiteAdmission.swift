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
    private var users: [UserID: UserState] = [:]
    private var depth: Int?

    /// One user's limits and usage, read once per batch (`SQLiteLimitRows.admissionSnapshot`)
    /// and kept current in memory as the batch's jobs are admitted.
    private struct UserState {
        var limits: UserLimits
        var queuedCost: Int
        var tat: Int64?
        var tatChanged = false
        var today: MeteredUsage
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
        let rate = try admission.map { try check(cost: cost, $0, &state) } ?? nil
        state.queuedCost += cost
        depth = depth.map { $0 + 1 }
        users[job.userID] = state
        return Admitted(cost: cost, rate: rate)
    }

    /// Applies the admission's limits in a fixed order (queue cap, budgets, `max_queued`, rate),
    /// so a job refused for any reason spends no rate.
    private func check(cost: Int, _ admission: Admission, _ state: inout UserState) throws -> RateLimitStatus? {
        let limiter = admission.userLimits ? state.limits.limiter : nil
        let peek = limiter.map { $0.status(tat: state.tat, now: nowMicros) }
        if let cap = admission.maxQueueDepth, let depth, depth >= cap {
            throw LimitRefusal.queueFull(limit: cap, status: peek)
        }
        guard admission.userLimits else { return nil }
        if let spent = BudgetExhaustion.first(limits: state.limits, used: state.today, now: now, crossed: false) {
            throw LimitRefusal.budget(spent, status: peek)
        }
        if let maxQueued = state.limits.maxQueued, state.queuedCost > 0, state.queuedCost + cost > maxQueued {
            throw LimitRefusal.tooManyQueued(limit: maxQueued, queued: state.queuedCost, status: peek)
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
        let snapshot = try SQLiteLimitRows.admissionSnapshot(db, user: user, day: day)
        if depth == nil { depth = snapshot.queueDepth }
        return UserState(
            limits: snapshot.own.applied(to: snapshot.defaults.applied(to: builtin)), queuedCost: snapshot.queuedCost,
            tat: snapshot.tat, today: snapshot.today)
    }
}
