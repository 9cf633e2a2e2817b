import Foundation
import GRDB

/// Which job a claim takes: per-user concurrency caps, fairness between users, and budgets.
extension SQLiteJobStore {
    /// A claimable job and the daily budgets in force for its user.
    struct ClaimCandidate {
        var job: JobRecord
        var dailyTokens: Int64?
        var dailyCostMicroUSD: Int64?
    }

    /// The job columns qualified with the `j` alias, for queries that join other tables.
    static let qualifiedJobColumns = JobRecord.columns
        .split(separator: ",").map { "j." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }.joined(separator: ", ")

    /// The next job to claim, inside the caller's transaction.
    ///
    /// Each user with queued jobs offers their most urgent due job (priority, then FIFO). Users
    /// whose running jobs already fill `max_running` cost units offer nothing (a job always
    /// fits when none of its user's run), so a capped user's backlog costs a claim one index
    /// probe, never a scan, and never blocks other users. Among the offers the highest
    /// priority wins, then the user with the fewest running cost units, then the oldest: a
    /// user with a hundred queued jobs and another with one share free slots instead of
    /// queueing behind each other.
    static func nextClaimable(_ db: Database, now: Date, builtin: UserLimits) throws -> ClaimCandidate? {
        let statement = try db.cachedStatement(sql: """
            SELECT \(qualifiedJobColumns),
                   COALESCE(l.daily_tokens, d.daily_tokens) AS budget_tokens,
                   COALESCE(l.daily_cost_micro_usd, d.daily_cost_micro_usd) AS budget_cost
            FROM user_counters c
            JOIN jobs j ON j.seq = (
                SELECT q.seq FROM jobs q
                WHERE q.user_id = c.user_id AND q.status = 'queued' AND q.not_before <= :now
                ORDER BY q.priority DESC, q.seq ASC LIMIT 1)
            LEFT JOIN user_limits l ON l.user_id = c.user_id
            LEFT JOIN user_limits d ON d.user_id = '\(SQLiteLimitRows.defaultsKey)'
            WHERE c.queued_jobs > 0
              AND (c.running_cost = 0
                   OR COALESCE(l.max_running, d.max_running, :maxRunning) < 0
                   OR c.running_cost + j.cost <= COALESCE(l.max_running, d.max_running, :maxRunning))
            ORDER BY j.priority DESC, c.running_cost ASC, j.seq ASC
            LIMIT 1
            """)
        let arguments: StatementArguments = [
            "now": StoredDate.millis(now), "maxRunning": builtin.maxRunning.map(Int64.init) ?? -1,
        ]
        guard let row = try Row.fetchOne(statement, arguments: arguments) else { return nil }
        func budget(_ stored: Int64?, _ fallback: Int64?) -> Int64? {
            guard let stored else { return fallback }
            return stored < 0 ? nil : stored
        }
        return ClaimCandidate(
            job: try JobRecord(row: row),
            dailyTokens: budget(row["budget_tokens"], builtin.dailyTokens),
            dailyCostMicroUSD: budget(row["budget_cost"], builtin.dailyCostMicroUSD))
    }

    /// The budget a candidate's user has used up today, if any (only read when one is set).
    static func spentBudget(_ db: Database, _ candidate: ClaimCandidate, now: Date) throws -> BudgetExhaustion? {
        guard candidate.dailyTokens != nil || candidate.dailyCostMicroUSD != nil else { return nil }
        let used = try SQLiteLimitRows.usage(db, user: candidate.job.userID, day: UsageDay.index(of: now))
        let limits = UserLimits(rate: nil, burst: 1, maxRunning: nil, maxQueued: nil,
                                dailyTokens: candidate.dailyTokens, dailyCostMicroUSD: candidate.dailyCostMicroUSD)
        return BudgetExhaustion.first(limits: limits, used: used, now: now, crossed: false)
    }

    /// Most jobs one claim refuses for spent budgets before it gives up for this call.
    static let maxRefusalsPerClaim = 32
}
