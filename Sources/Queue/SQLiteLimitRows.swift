import Foundation
import GRDB

/// Reading and writing the limit tables inside a caller's transaction (see `SQLiteLimitSchema`).
enum SQLiteLimitRows {
    /// The `user_limits` key of the store-wide defaults (no user id can be `*`).
    static let defaultsKey = "*"

    static func key(_ scope: LimitScope) -> String {
        switch scope {
        case .defaults: defaultsKey
        case .user(let id): id.rawValue
        }
    }

    static let columnNames = [
        "rate_count", "rate_period_ms", "burst", "max_running", "max_queued", "daily_tokens",
        "daily_cost_micro_usd", "disk_quota_bytes", "kind_costs",
    ]
    static let columns = columnNames.joined(separator: ", ")

    /// The stored overrides under `key`; empty when there is no row.
    static func overrides(_ db: Database, key: String) throws -> LimitOverrides {
        guard let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(columns) FROM user_limits WHERE user_id = ?"), arguments: [key])
        else { return LimitOverrides() }
        return overrides(row)
    }

    /// The overrides in `row`'s limit columns, named with `prefix` (see `admissionSnapshot`).
    static func overrides(_ row: Row, prefix: String = "") -> LimitOverrides {
        func setting<T: BinaryInteger & Sendable>(_ column: String, as: T.Type) -> LimitSetting<T> {
            guard let value = row[prefix + column] as Int64? else { return .inherit }
            return value < 0 ? .unlimited : .value(T(value))
        }
        var overrides = LimitOverrides()
        if let count = row[prefix + "rate_count"] as Int64? {
            overrides.rate = count < 0 ? .unlimited
                : .value(RatePolicy(count: Int(count), periodMillis: row[prefix + "rate_period_ms"] as Int64? ?? 60_000))
        }
        overrides.burst = setting("burst", as: Int.self)
        overrides.maxRunning = setting("max_running", as: Int.self)
        overrides.maxQueued = setting("max_queued", as: Int.self)
        overrides.dailyTokens = setting("daily_tokens", as: Int64.self)
        overrides.dailyCostMicroUSD = setting("daily_cost_micro_usd", as: Int64.self)
        overrides.diskQuotaBytes = setting("disk_quota_bytes", as: Int64.self)
        if let text = row[prefix + "kind_costs"] as String?, let object = JSONValue.parse(text)?.objectValue {
            for (kind, value) in object {
                if let cost = value.intValue { overrides.kindCosts[kind] = cost }
            }
        }
        return overrides
    }

    /// Replaces the row under `key` (deletes it when nothing is overridden).
    static func store(_ overrides: LimitOverrides, _ db: Database, key: String) throws {
        guard !overrides.isEmpty else {
            try db.execute(sql: "DELETE FROM user_limits WHERE user_id = ?", arguments: [key])
            return
        }
        func stored<T: BinaryInteger>(_ setting: LimitSetting<T>) -> Int64? {
            switch setting {
            case .inherit: nil
            case .unlimited: -1
            case .value(let value): Int64(value)
            }
        }
        var rateCount: Int64?
        var ratePeriod: Int64?
        switch overrides.rate {
        case .inherit: break
        case .unlimited: rateCount = -1
        case .value(let policy): (rateCount, ratePeriod) = (Int64(policy.count), policy.periodMillis)
        }
        let costs: String? = overrides.kindCosts.isEmpty ? nil
            : JSONValue.object(overrides.kindCosts.mapValues { .number(Double($0)) }).jsonText()
        let values: [(any DatabaseValueConvertible)?] = [
            key, rateCount, ratePeriod, stored(overrides.burst), stored(overrides.maxRunning),
            stored(overrides.maxQueued), stored(overrides.dailyTokens), stored(overrides.dailyCostMicroUSD),
            stored(overrides.diskQuotaBytes), costs,
        ]
        try db.execute(sql: """
            INSERT OR REPLACE INTO user_limits (user_id, \(columns)) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """, arguments: StatementArguments(values))
    }

    /// Everything admitting one user's submissions reads, as of the start of a batch.
    struct AdmissionSnapshot {
        var own: LimitOverrides
        var defaults: LimitOverrides
        var tat: Int64?
        var queuedCost: Int
        var today: MeteredUsage
        var queueDepth: Int
    }

    /// The user's and the store-wide overrides, GCRA state, queued cost units, today's usage and
    /// the queue depth in one statement: the submission path pays one read per user and batch.
    static func admissionSnapshot(_ db: Database, user: UserID, day: Int64) throws -> AdmissionSnapshot {
        func limitColumns(_ table: String, _ prefix: String) -> String {
            columnNames.map { "\(table).\($0) AS \(prefix)\($0)" }.joined(separator: ", ")
        }
        let statement = try db.cachedStatement(sql: """
            SELECT \(limitColumns("l", "u_")), \(limitColumns("d", "d_")), r.tat_us AS tat,
                   c.queued_cost AS queued_cost, g.tokens AS tokens, g.cost_micro_usd AS cost, q.queued_jobs AS depth
            FROM (SELECT ? AS id) me
            LEFT JOIN user_limits l ON l.user_id = me.id
            LEFT JOIN user_limits d ON d.user_id = '\(defaultsKey)'
            LEFT JOIN rate_limits r ON r.user_id = me.id
            LEFT JOIN user_counters c ON c.user_id = me.id
            LEFT JOIN user_usage g ON g.user_id = me.id AND g.day = ?
            LEFT JOIN queue_depth q ON q.id = 1
            """)
        guard let row = try Row.fetchOne(statement, arguments: [user.rawValue, day]) else {
            throw StoreError.unavailable("admission snapshot returned no row")
        }
        return AdmissionSnapshot(
            own: overrides(row, prefix: "u_"), defaults: overrides(row, prefix: "d_"), tat: row["tat"],
            queuedCost: row["queued_cost"] ?? 0,
            today: MeteredUsage(tokens: row["tokens"] ?? 0, costMicroUSD: row["cost"] ?? 0),
            queueDepth: row["depth"] ?? 0)
    }

    /// The store-wide defaults applied over the engine's built-in ones.
    static func defaults(_ db: Database, builtin: UserLimits) throws -> UserLimits {
        try overrides(db, key: defaultsKey).applied(to: builtin)
    }

    /// A user's limits in force, over already-resolved defaults.
    static func limits(_ db: Database, user: UserID, defaults: UserLimits) throws -> UserLimits {
        try overrides(db, key: user.rawValue).applied(to: defaults)
    }

    /// Queued and running jobs and cost units of a user.
    static func counters(_ db: Database, user: UserID) throws -> (queuedJobs: Int, queuedCost: Int, runningJobs: Int, runningCost: Int) {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT queued_jobs, queued_cost, running_jobs, running_cost FROM user_counters WHERE user_id = ?
            """), arguments: [user.rawValue]) else { return (0, 0, 0, 0) }
        return (row["queued_jobs"], row["queued_cost"], row["running_jobs"], row["running_cost"])
    }

    /// Jobs waiting in the whole queue.
    static func queueDepth(_ db: Database) throws -> Int {
        try Int.fetchOne(db.cachedStatement(sql: "SELECT queued_jobs FROM queue_depth WHERE id = 1")) ?? 0
    }

    /// A user's model usage on a UTC day.
    static func usage(_ db: Database, user: UserID, day: Int64) throws -> MeteredUsage {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: """
            SELECT tokens, cost_micro_usd FROM user_usage WHERE user_id = ? AND day = ?
            """), arguments: [user.rawValue, day]) else { return MeteredUsage() }
        return MeteredUsage(tokens: row["tokens"], costMicroUSD: row["cost_micro_usd"])
    }

    /// Adds `delta` to a user's usage of a UTC day.
    static func addUsage(_ db: Database, user: UserID, day: Int64, _ delta: MeteredUsage) throws {
        guard delta != MeteredUsage() else { return }
        try db.cachedStatement(sql: """
            INSERT INTO user_usage (user_id, day, tokens, cost_micro_usd) VALUES (?, ?, ?, ?)
            ON CONFLICT (user_id, day) DO UPDATE SET
                tokens = tokens + excluded.tokens, cost_micro_usd = cost_micro_usd + excluded.cost_micro_usd
            """).execute(arguments: [user.rawValue, day, delta.tokens, delta.costMicroUSD])
    }

    /// A user's GCRA state (theoretical arrival time in microseconds), if any.
    static func tat(_ db: Database, user: UserID) throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT tat_us FROM rate_limits WHERE user_id = ?"),
                           arguments: [user.rawValue])
    }

    static func setTAT(_ db: Database, user: UserID, _ tat: Int64) throws {
        try db.cachedStatement(sql: """
            INSERT INTO rate_limits (user_id, tat_us) VALUES (?, ?)
            ON CONFLICT (user_id) DO UPDATE SET tat_us = excluded.tat_us
            """).execute(arguments: [user.rawValue, tat])
    }

    /// Microseconds since the epoch, the GCRA's time scale.
    static func micros(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1_000_000).rounded())
    }
}
