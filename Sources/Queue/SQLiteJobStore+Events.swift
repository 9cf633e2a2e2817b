import Foundation
import GRDB

/// Each job's append-only event log.
extension SQLiteJobStore {
    public func appendEvents(_ id: JobID, owner: String, _ events: [NewEvent]) async throws -> Int64 {
        let now = now()
        let last = try await database.write("appendEvents") { db -> Int64 in
            guard let job = try JobRecord.fetch(db, id: id) else { throw StoreError.notFound("job \(id)") }
            // Only the live lease holder writes, so a worker that lost its lease (and whose job
            // may already run elsewhere) cannot interleave stale output into the log.
            guard job.status == .running, job.leaseOwner == owner,
                  let expiry = job.leaseExpiresAt, expiry > now
            else { throw StoreError.leaseLost(id) }
            var seq = job.lastEventSeq
            let time = StoredDate.millis(now)
            let statement = try db.cachedStatement(
                sql: "INSERT INTO job_events (job_id, seq, type, data, time) VALUES (?, ?, ?, ?, ?)")
            for event in events {
                seq += 1
                try statement.execute(arguments: [id.rawValue, seq, event.type, event.data, time])
            }
            if seq != job.lastEventSeq {
                try db.cachedStatement(sql: "UPDATE jobs SET last_event_seq = ? WHERE id = ?").execute(arguments: [seq, id.rawValue])
            }
            return seq
        }
        if !events.isEmpty { feed.notify(.events(id)) }
        return last
    }

    public func events(of id: JobID, after: Int64, limit: Int) async throws -> [JobEvent] {
        guard limit > 0 else { return [] }
        return try await database.read("events") { db in
            try Row.fetchAll(db.cachedStatement(sql: """
                SELECT seq, type, data, time FROM job_events WHERE job_id = ? AND seq > ?
                ORDER BY seq LIMIT ?
                """), arguments: [id.rawValue, after, limit]).map { row in
                JobEvent(seq: row["seq"], type: row["type"], data: row["data"], time: StoredDate.date(row["time"]))
            }
        }
    }
}
