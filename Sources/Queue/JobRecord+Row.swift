import Foundation
import GRDB

/// Dates are stored as integer milliseconds since the epoch.
enum StoredDate {
    static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func date(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }

    /// `date` as it reads back from the store, so values returned before and after a
    /// round trip compare equal.
    static func rounded(_ date: Date) -> Date {
        Self.date(millis(date))
    }
}

extension JobRecord {
    static let columns = """
        id, user_id, kind, project, status, priority, payload, attempt, max_attempts, created_at,
        not_before, started_at, finished_at, lease_owner, lease_expires_at, cancel_requested,
        result, metrics, error, last_event_seq, idempotency_key, request_hash
        """

    /// Decodes a `jobs` row.
    /// - Throws: `StoreError.unavailable` when the row is not a valid job (a corrupt store).
    init(row: Row) throws {
        func corrupt(_ what: String) -> StoreError {
            StoreError.unavailable("corrupt job row \(row["id"] as String? ?? "?"): \(what)")
        }
        guard let id = JobID(rawValue: row["id"]) else { throw corrupt("id") }
        guard let status = JobStatus(rawValue: row["status"]) else { throw corrupt("status") }
        guard let payload = JSONValue.parse(row["payload"] as String) else { throw corrupt("payload") }
        func json(_ column: String) throws -> JSONValue? {
            guard let text = row[column] as String? else { return nil }
            guard let value = JSONValue.parse(text) else { throw corrupt(column) }
            return value
        }
        func date(_ column: String) -> Date? {
            (row[column] as Int64?).map(StoredDate.date)
        }
        var error: JobError?
        if let text = row["error"] as String? {
            do {
                error = try JSONDecoder().decode(JobError.self, from: Data(text.utf8))
            } catch {
                throw corrupt("error")
            }
        }
        self.init(
            id: id, userID: UserID(rawValue: row["user_id"]), kind: row["kind"], project: row["project"],
            status: status, priority: row["priority"], payload: payload, attempt: row["attempt"],
            maxAttempts: row["max_attempts"], createdAt: StoredDate.date(row["created_at"]),
            notBefore: StoredDate.date(row["not_before"]), startedAt: date("started_at"),
            finishedAt: date("finished_at"), leaseOwner: row["lease_owner"],
            leaseExpiresAt: date("lease_expires_at"), cancelRequested: row["cancel_requested"],
            result: try json("result"), metrics: try json("metrics"), error: error,
            lastEventSeq: row["last_event_seq"], idempotencyKey: row["idempotency_key"],
            requestHash: row["request_hash"])
    }

    /// Every date rounded to what the store keeps (milliseconds).
    func roundedForStorage() -> JobRecord {
        var copy = self
        copy.createdAt = StoredDate.rounded(createdAt)
        copy.notBefore = StoredDate.rounded(notBefore)
        copy.startedAt = startedAt.map(StoredDate.rounded)
        copy.finishedAt = finishedAt.map(StoredDate.rounded)
        copy.leaseExpiresAt = leaseExpiresAt.map(StoredDate.rounded)
        return copy
    }

    /// The row's values in `columns` order.
    func rowArguments() throws -> StatementArguments {
        let errorText = try encodedError()
        let values: [(any DatabaseValueConvertible)?] = [
            id.rawValue, userID.rawValue, kind, project, status.rawValue, priority, payload.jsonText(),
            attempt, maxAttempts, StoredDate.millis(createdAt), StoredDate.millis(notBefore),
            startedAt.map(StoredDate.millis), finishedAt.map(StoredDate.millis), leaseOwner,
            leaseExpiresAt.map(StoredDate.millis), cancelRequested, result?.jsonText(), metrics?.jsonText(),
            errorText, lastEventSeq, idempotencyKey, requestHash,
        ]
        return StatementArguments(values)
    }

    private func encodedError() throws -> String? {
        guard let error else { return nil }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(error), as: UTF8.self)
    }

    private static let insertSQL =
        "INSERT INTO jobs (\(columns), cost) VALUES (\(Array(repeating: "?", count: 23).joined(separator: ", ")))"

    /// Inserts this new job with its cost units (`UserLimits.cost(of:)`).
    func insert(_ db: Database, cost: Int = 1) throws {
        var arguments = try rowArguments()
        arguments += [cost]
        try db.cachedStatement(sql: Self.insertSQL).execute(arguments: arguments)
    }

    /// Writes every field of this job over its row.
    func update(_ db: Database) throws {
        try db.cachedStatement(sql: """
            UPDATE jobs SET status = ?, priority = ?, attempt = ?, max_attempts = ?, not_before = ?,
                started_at = ?, finished_at = ?, lease_owner = ?, lease_expires_at = ?,
                cancel_requested = ?, result = ?, metrics = ?, error = ?, last_event_seq = ?
            WHERE id = ?
            """).execute(arguments: updateArguments())
    }

    private func updateArguments() throws -> StatementArguments {
        let errorText = try encodedError()
        let values: [(any DatabaseValueConvertible)?] = [
            status.rawValue, priority, attempt, maxAttempts, StoredDate.millis(notBefore),
            startedAt.map(StoredDate.millis), finishedAt.map(StoredDate.millis), leaseOwner,
            leaseExpiresAt.map(StoredDate.millis), cancelRequested, result?.jsonText(), metrics?.jsonText(),
            errorText, lastEventSeq, id.rawValue,
        ]
        return StatementArguments(values)
    }

    /// One job by id, `nil` when absent.
    static func fetch(_ db: Database, id: JobID) throws -> JobRecord? {
        try fetchOne(db, sql: "SELECT \(columns) FROM jobs WHERE id = ?", arguments: [id.rawValue])
    }

    /// Statements are compiled once per connection and reused (`cachedStatement`).
    static func fetchOne(_ db: Database, sql: String, arguments: StatementArguments) throws -> JobRecord? {
        guard let row = try Row.fetchOne(db.cachedStatement(sql: sql), arguments: arguments) else { return nil }
        return try JobRecord(row: row)
    }

    static func fetchAll(_ db: Database, sql: String, arguments: StatementArguments) throws -> [JobRecord] {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments).map { try JobRecord(row: $0) }
    }
}
