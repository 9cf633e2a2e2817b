import Foundation
import GRDB

/// Limits, usage and budgets (`LimitStore`); the tables are described in `SQLiteLimitSchema`.
extension SQLiteJobStore: LimitStore {
    public func submit(_ job: NewJob, admission: Admission) async throws -> AdmittedSubmission {
        try await submissions.submit(Submission(job: job, admission: admission))
    }

    public func updateLimits(
        for scope: LimitScope, _ change: @escaping @Sendable (inout LimitOverrides) -> Void
    ) async throws -> LimitOverrides {
        let key = SQLiteLimitRows.key(scope)
        return try await database.write("updateLimits") { db in
            var overrides = try SQLiteLimitRows.overrides(db, key: key)
            change(&overrides)
            try SQLiteLimitRows.store(overrides, db, key: key)
            return overrides
        }
    }

    public func limitOverrides(for scope: LimitScope) async throws -> LimitOverrides {
        let key = SQLiteLimitRows.key(scope)
        return try await database.read("limitOverrides") { db in try SQLiteLimitRows.overrides(db, key: key) }
    }

    public func limits(of user: UserID) async throws -> UserLimits {
        let builtin = builtinLimits
        return try await database.read("limits") { db in
            try SQLiteLimitRows.limits(db, user: user, defaults: SQLiteLimitRows.defaults(db, builtin: builtin))
        }
    }

    public func usage(of user: UserID) async throws -> UserUsage {
        let now = now()
        let builtin = builtinLimits
        return try await database.read("usage") { db in
            let limits = try SQLiteLimitRows.limits(db, user: user, defaults: SQLiteLimitRows.defaults(db, builtin: builtin))
            let counters = try SQLiteLimitRows.counters(db, user: user)
            let day = UsageDay.index(of: now)
            let rate = try limits.limiter.map { try $0.status(tat: SQLiteLimitRows.tat(db, user: user), now: SQLiteLimitRows.micros(now)) }
            return UserUsage(
                queuedJobs: counters.queuedJobs, queuedCost: counters.queuedCost, runningJobs: counters.runningJobs,
                runningCost: counters.runningCost, day: UsageDay.start(of: day),
                today: try SQLiteLimitRows.usage(db, user: user, day: day), rate: rate)
        }
    }

    public func chargeUsage(_ id: JobID, owner: String, attemptTotal: MeteredUsage) async throws -> BudgetCheck {
        let builtin = builtinLimits
        return try await database.write("chargeUsage") { db -> BudgetCheck in
            let now = self.now()
            guard let job = try JobRecord.fetch(db, id: id) else { throw StoreError.notFound("job \(id)") }
            // Only the live lease holder charges, like it alone appends events: a worker that
            // lost the job cannot charge the next attempt's figures.
            guard job.status == .running, job.leaseOwner == owner, let expiry = job.leaseExpiresAt, expiry > now
            else { throw StoreError.leaseLost(id) }
            let charged = try Row.fetchOne(db.cachedStatement(sql: """
                SELECT tokens, cost_micro_usd FROM job_usage WHERE job_id = ? AND attempt = ? AND owner = ?
                """), arguments: [id.rawValue, job.attempt, owner])
            let before = MeteredUsage(tokens: charged?["tokens"] ?? 0, costMicroUSD: charged?["cost_micro_usd"] ?? 0)
            let delta = MeteredUsage(tokens: attemptTotal.tokens - before.tokens,
                                     costMicroUSD: attemptTotal.costMicroUSD - before.costMicroUSD)
            let day = UsageDay.index(of: now)
            if delta != MeteredUsage() {
                try db.cachedStatement(sql: """
                    INSERT OR REPLACE INTO job_usage (job_id, attempt, owner, tokens, cost_micro_usd) VALUES (?, ?, ?, ?, ?)
                    """).execute(arguments: [id.rawValue, job.attempt, owner, attemptTotal.tokens, attemptTotal.costMicroUSD])
                try SQLiteLimitRows.addUsage(db, user: job.userID, day: day, delta)
            }
            let limits = try SQLiteLimitRows.limits(db, user: job.userID, defaults: SQLiteLimitRows.defaults(db, builtin: builtin))
            guard limits.dailyTokens != nil || limits.dailyCostMicroUSD != nil else { return .within }
            let used = try SQLiteLimitRows.usage(db, user: job.userID, day: day)
            if let crossed = BudgetExhaustion.first(limits: limits, used: used, now: now, crossed: true) {
                return .exceeded(crossed)
            }
            return .within
        }
    }
}
