import Foundation
import GRDB
import ServiceLifecycle

/// The embedded engine: a SQLite file in WAL mode, shared by any number of processes on one
/// host, with inotify wake-ups between them (DESIGN §3).
///
/// Every state change loads the job, asks `JobLifecycle` for the next state and writes it back
/// inside one `BEGIN IMMEDIATE` transaction, so concurrent claims — from tasks or processes —
/// never hand the same job out twice. Notifications are sent only after the commit, so a woken
/// waiter always finds the change.
public final class SQLiteJobStore: JobStore, AccountStore {
    /// The database file and its connections.
    public let database: SQLiteDatabase
    let clock: any StoreClock
    let feed: InotifyChangeFeed
    /// The limits that apply where the store holds no defaults of its own (`LimitStore`).
    let builtinLimits: UserLimits
    /// Concurrent submissions share write transactions.
    let submissions: GroupCommit<Submission, AdmittedSubmission>

    public var changes: any ChangeFeed { feed }

    /// Opens (creating and migrating if needed) the store at `path`.
    /// - Parameters:
    ///   - clock: the source of "now"; every process sharing the file must use wall-clock time.
    ///   - notifyDirectory: where the change-feed channel files live; every process sharing
    ///     the database must use the same one. Defaults to `notify/` next to the database.
    ///   - limits: the built-in limits, below the store-wide defaults kept in the file; every
    ///     process sharing the database should use the same (the service uses `.standard`).
    /// - Throws: `StoreError.unavailable` when the file or the directory cannot be used.
    public init(
        path: String, clock: any StoreClock = SystemStoreClock(), notifyDirectory: String? = nil,
        options: SQLiteOptions = SQLiteOptions(), limits: UserLimits = .unlimited
    ) throws {
        let directory = notifyDirectory
            ?? URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("notify").path
        self.feed = try InotifyChangeFeed(directory: directory)
        let database = try SQLiteDatabase(path: path, options: options)
        self.database = database
        self.clock = clock
        self.builtinLimits = limits
        self.submissions = GroupCommit { [feed, clock] jobs in
            try await SQLiteJobStore.insert(
                jobs, database: database, feed: feed, now: { StoredDate.rounded(clock.now()) }, limits: limits)
        }
    }

    /// Runs the change-feed reader until graceful shutdown, then stops it.
    public func run() async throws {
        do {
            try feed.start()
        } catch {
            throw StoreError.unavailable("change feed: \(error)")
        }
        try? await gracefulShutdown()
        feed.shutdown()
    }

    /// "Now" as the store records it (whole milliseconds), so returned records equal re-read ones.
    func now() -> Date {
        StoredDate.rounded(clock.now())
    }

    // MARK: - Submitting and reading

    public func submit(_ job: NewJob) async throws -> SubmitOutcome {
        try await submissions.submit(Submission(job: job, admission: nil)).outcome
    }

    /// One request of a group-commit batch: the job and, when limits apply, how to admit it.
    struct Submission: Sendable {
        var job: NewJob
        var admission: Admission?
    }

    /// Writes a batch of submissions in one transaction (see `GroupCommit`), admitting each
    /// against the limits in the same transaction (`SQLiteAdmission`), then wakes the workers
    /// once for the whole batch. "Now" is read once the write lock is held, so `created_at`
    /// follows commit order: a job a claim could not yet see is never stamped before that claim.
    static func insert(
        _ submissions: [Submission], database: SQLiteDatabase, feed: InotifyChangeFeed,
        now clock: @escaping @Sendable () -> Date, limits: UserLimits
    ) async throws -> [Result<AdmittedSubmission, any Error>] {
        let results = try await database.write("submit") { db -> [Result<AdmittedSubmission, any Error>] in
            let now = clock()
            var admission = SQLiteAdmission(db: db, now: now, builtin: limits)
            let results = submissions.map { submission in
                Result { () throws -> AdmittedSubmission in
                    let job = submission.job
                    if let key = job.idempotencyKey,
                       let existing = try JobRecord.fetchOne(
                           db, sql: "SELECT \(JobRecord.columns) FROM jobs WHERE user_id = ? AND idempotency_key = ?",
                           arguments: [job.userID.rawValue, key]) {
                        guard existing.requestHash == job.requestHash else {
                            throw StoreError.idempotencyConflict(existing: existing.id)
                        }
                        return AdmittedSubmission(outcome: .existing(existing), rate: nil)
                    }
                    let admitted = try admission.admit(job, submission.admission)
                    let record = JobRecord(
                        id: JobID.generate(at: now), userID: job.userID, kind: job.kind, project: job.project,
                        status: .queued, priority: job.priority, payload: job.payload, attempt: 1,
                        maxAttempts: job.maxAttempts, createdAt: now, notBefore: job.notBefore ?? now,
                        idempotencyKey: job.idempotencyKey, requestHash: job.requestHash
                    ).roundedForStorage()
                    try record.insert(db, cost: admitted.cost)
                    return AdmittedSubmission(outcome: .created(record), rate: admitted.rate)
                }
            }
            try admission.persist()
            return results
        }
        if results.contains(where: { if case .success(let admitted) = $0, case .created = admitted.outcome { true } else { false } }) {
            feed.notify(.queue)
        }
        return results
    }

    public func job(idempotencyKey key: String, userID: UserID) async throws -> JobRecord? {
        try await database.read("idempotency lookup") { db in
            try JobRecord.fetchOne(
                db, sql: "SELECT \(JobRecord.columns) FROM jobs WHERE user_id = ? AND idempotency_key = ?",
                arguments: [userID.rawValue, key])
        }
    }

    public func job(_ id: JobID, userID: UserID?) async throws -> JobRecord? {
        let job = try await database.read("job") { db in try JobRecord.fetch(db, id: id) }
        guard let job, userID == nil || job.userID == userID else { return nil }
        return job
    }

    public func jobs(userID: UserID, filter: JobFilter, after cursor: JobID?, limit: Int) async throws -> [JobRecord] {
        guard limit > 0 else { return [] }
        var conditions = ["user_id = ?"]
        var arguments: [(any DatabaseValueConvertible)?] = [userID.rawValue]
        if let status = filter.status {
            conditions.append("status = ?")
            arguments.append(status.rawValue)
        }
        if let kind = filter.kind {
            conditions.append("kind = ?")
            arguments.append(kind)
        }
        if let project = filter.project {
            conditions.append("project = ?")
            arguments.append(project)
        }
        if let cursor {
            conditions.append("id < ?")
            arguments.append(cursor.rawValue)
        }
        arguments.append(limit)
        let sql = "SELECT \(JobRecord.columns) FROM jobs WHERE \(conditions.joined(separator: " AND ")) ORDER BY id DESC LIMIT ?"
        let statementArguments = StatementArguments(arguments)
        return try await database.read("jobs") { db in
            try JobRecord.fetchAll(db, sql: sql, arguments: statementArguments)
        }
    }

    public func queuePosition(of id: JobID) async throws -> Int? {
        let now = StoredDate.millis(now())
        return try await database.read("queuePosition") { db -> Int? in
            guard let row = try Row.fetchOne(
                db, sql: "SELECT seq, priority FROM jobs WHERE id = ? AND status = 'queued'", arguments: [id.rawValue])
            else { return nil }
            let seq: Int64 = row["seq"]
            let priority: Int = row["priority"]
            return try Int.fetchOne(db, sql: """
                SELECT COUNT(*) FROM jobs
                WHERE status = 'queued' AND not_before <= ? AND (priority > ? OR (priority = ? AND seq < ?))
                """, arguments: [now, priority, priority, seq]) ?? 0
        }
    }

    public func stats() async throws -> QueueStats {
        try await database.read("stats") { db in
            var counts = Dictionary(uniqueKeysWithValues: JobStatus.allCases.map { ($0, 0) })
            for row in try Row.fetchAll(db, sql: "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") {
                if let status = JobStatus(rawValue: row["status"]) { counts[status] = row["n"] }
            }
            let oldest = try Int64.fetchOne(db, sql: "SELECT MIN(created_at) FROM jobs WHERE status = 'queued'")
            return QueueStats(counts: counts, oldestQueuedAt: oldest.map(StoredDate.date))
        }
    }

    public func ping() async throws {
        _ = try await database.read("ping") { db in try Int.fetchOne(db, sql: "SELECT 1") }
    }
}
