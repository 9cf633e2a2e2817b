import Foundation
import GRDB

/// Claims, leases, completion and cancellation: every transition through `JobLifecycle`.
extension SQLiteJobStore {
    /// Claims the next job as `nextClaimable` orders them (per-user `max_running`, fairness
    /// between users). A candidate whose user's daily budget is spent is refused on the way
    /// (failed `E002` with `details.budget`), never started. "Now" is read under the write
    /// lock, so `started_at` is never earlier than a submission this claim could not see.
    public func claim(owner: String, lease: Duration) async throws -> JobRecord? {
        let builtin = builtinLimits
        let (claimed, recovered) = try await database.write("claim") { db -> (JobRecord?, Recovery) in
            let now = self.now()
            var recovered = try Self.recoverExpired(db, now: now)
            while let candidate = try Self.nextClaimable(db, now: now, builtin: builtin) {
                do {
                    if let spent = try Self.spentBudget(db, candidate, now: now) {
                        let refused = try JobLifecycle.refuse(candidate.job, because: spent.jobError(stopped: false), now: now)
                        try refused.roundedForStorage().update(db)
                        recovered.refused.append(refused.id)
                        if recovered.refused.count >= Self.maxRefusalsPerClaim { break }
                        continue
                    }
                    let next = try JobLifecycle.claim(candidate.job, owner: owner, now: now, lease: lease).roundedForStorage()
                    try next.update(db)
                    return (next, recovered)
                } catch let refusal as JobLifecycle.Refusal {
                    throw StoreError.unavailable("claim refused for \(candidate.job.id): \(refusal)")
                }
            }
            return (nil, recovered)
        }
        announce(recovered)
        return claimed
    }

    public func heartbeat(_ id: JobID, owner: String, lease: Duration) async throws -> HeartbeatResult {
        return try await database.write("heartbeat") { db -> HeartbeatResult in
            let now = self.now()
            guard let job = try JobRecord.fetch(db, id: id),
                  let next = try? JobLifecycle.heartbeat(job, owner: owner, now: now, lease: lease).roundedForStorage(),
                  let expiresAt = next.leaseExpiresAt
            else { return .lost }
            try next.update(db)
            return .renewed(expiresAt: expiresAt, cancelRequested: next.cancelRequested)
        }
    }

    @discardableResult
    public func complete(_ id: JobID, owner: String, with completion: JobCompletion) async throws -> JobRecord {
        let next = try await database.write("complete") { db -> JobRecord in
            let now = self.now()
            guard let job = try JobRecord.fetch(db, id: id) else { throw StoreError.notFound("job \(id)") }
            let next: JobRecord
            do {
                next = try JobLifecycle.complete(job, owner: owner, with: completion, now: now).roundedForStorage()
            } catch {
                throw StoreError.leaseLost(id)
            }
            try next.update(db)
            return next
        }
        announceEvents(of: next)
        if next.status == .queued { feed.notify(.queue) }
        return next
    }

    public func release(_ id: JobID, owner: String) async throws {
        let next = try await database.write("release") { db -> JobRecord in
            let now = self.now()
            guard let job = try JobRecord.fetch(db, id: id) else { throw StoreError.notFound("job \(id)") }
            let next: JobRecord
            do {
                next = try JobLifecycle.release(job, owner: owner, now: now).roundedForStorage()
            } catch {
                throw StoreError.leaseLost(id)
            }
            try next.update(db)
            return next
        }
        if next.status == .queued { feed.notify(.queue) }
        announceEvents(of: next)
    }

    @discardableResult
    public func recoverExpiredLeases() async throws -> Int {
        let recovered = try await database.write("recoverExpiredLeases") { db in
            try Self.recoverExpired(db, now: self.now())
        }
        announce(recovered)
        return recovered.count
    }

    public func requestCancel(_ id: JobID, userID: UserID?) async throws -> JobRecord? {
        let change = try await database.write("requestCancel") { db -> (before: JobRecord, after: JobRecord)? in
            let now = self.now()
            guard let job = try JobRecord.fetch(db, id: id), userID == nil || job.userID == userID else { return nil }
            let next = JobLifecycle.requestCancel(job, now: now).roundedForStorage()
            if next != job { try next.update(db) }
            return (job, next)
        }
        guard let change else { return nil }
        if change.before != change.after {
            if change.after.status == .running { feed.notify(.cancel) }
            announceEvents(of: change.after)
        }
        return change.after
    }

    // MARK: - Lease expiry

    /// What recovering expired leases did, to announce after the commit.
    struct Recovery: Sendable {
        var requeued: [JobID] = []
        var ended: [JobID] = []
        /// Queued jobs a claim failed because their user's daily budget is spent.
        var refused: [JobID] = []
        var count: Int { requeued.count + ended.count }
    }

    /// Requeues or ends every running job whose lease expired, inside the caller's transaction.
    static func recoverExpired(_ db: Database, now: Date) throws -> Recovery {
        let expired = try JobRecord.fetchAll(db, sql: """
            SELECT \(JobRecord.columns) FROM jobs WHERE status = 'running' AND lease_expires_at <= ?
            """, arguments: [StoredDate.millis(now)])
        var recovery = Recovery()
        for job in expired {
            guard let next = JobLifecycle.expire(job, now: now)?.roundedForStorage() else { continue }
            try next.update(db)
            if next.status == .queued {
                recovery.requeued.append(next.id)
            } else {
                recovery.ended.append(next.id)
            }
        }
        return recovery
    }

    /// Wakes workers for requeued jobs and subscribers of jobs that ended.
    func announce(_ recovery: Recovery) {
        // An ended job also frees a slot of its user's `max_running`; a claim that gave up
        // refusing leaves claimable jobs behind: either way, idle workers should look again.
        if !recovery.requeued.isEmpty || !recovery.ended.isEmpty || recovery.refused.count >= Self.maxRefusalsPerClaim {
            feed.notify(.queue)
        }
        for id in recovery.requeued { feed.notify(.events(id)) }
        for id in recovery.ended + recovery.refused { feed.retire(.events(id)) }
    }

    /// Wakes the job's event subscribers; once the job is terminal its channel is retired.
    func announceEvents(of job: JobRecord) {
        if job.status.isTerminal {
            feed.retire(.events(job.id))
        } else {
            feed.notify(.events(job.id))
        }
    }
}
