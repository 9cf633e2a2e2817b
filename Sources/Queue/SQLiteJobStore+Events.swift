import Foundation
import GRDB

/// Each job's append-only event log.
extension SQLiteJobStore {
    public func appendEvents(_ id: JobID, owner: String, _ events: [NewEvent], byteLimit: Int64) async throws -> EventAppend {
        let outcome = try await database.write("appendEvents") { db -> EventAppend in
            let now = self.now()
            guard let job = try JobRecord.fetch(db, id: id) else { throw StoreError.notFound("job \(id)") }
            // Only the live lease holder writes, so a worker that lost its lease (and whose job
            // may already run elsewhere) cannot interleave stale output into the log.
            guard job.status == .running, job.leaseOwner == owner,
                  let expiry = job.leaseExpiresAt, expiry > now
            else { throw StoreError.leaseLost(id) }
            var bytes = try Int64.fetchOne(
                db.cachedStatement(sql: "SELECT event_bytes FROM jobs WHERE id = ?"), arguments: [id.rawValue]) ?? 0
            var seq = job.lastEventSeq
            var appended = 0
            let time = StoredDate.millis(now)
            let statement = try db.cachedStatement(
                sql: "INSERT INTO job_events (job_id, seq, type, data, time) VALUES (?, ?, ?, ?, ?)")
            for event in events {
                let size = event.byteCount
                // A prefix of the batch, never a subset: the log stays in the agent's order.
                guard size <= byteLimit - bytes else { break }
                seq += 1
                bytes += size
                appended += 1
                try statement.execute(arguments: [id.rawValue, seq, event.type, event.data, time])
            }
            if appended > 0 {
                try db.cachedStatement(sql: "UPDATE jobs SET last_event_seq = ?, event_bytes = ? WHERE id = ?")
                    .execute(arguments: [seq, bytes, id.rawValue])
            }
            return EventAppend(lastSeq: seq, logBytes: bytes, refused: events.count - appended)
        }
        if outcome.refused < events.count { feed.notify(.events(id)) }
        return outcome
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
