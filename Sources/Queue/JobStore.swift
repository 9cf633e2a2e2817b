import Foundation
import ServiceLifecycle

/// The durable job queue: jobs, leases and each job's event log (DESIGN §3).
///
/// Every engine (the SQLite file, PostgreSQL) passes the same conformance suite. All methods
/// are safe to call concurrently from many tasks and many processes. A method returns only
/// after its change is committed, so an acknowledged submission survives a crash of any
/// process. As a `Service`, an engine runs its background duties (change notifications) for
/// as long as its owner's service group runs; plain reads and writes work without it.
public protocol JobStore: Service, LimitStore {
    /// Wake-ups for the queue, cancellations and event logs.
    var changes: any ChangeFeed { get }

    /// Stores a new job, or returns the one an earlier submission with the same idempotency
    /// key and request hash created.
    /// - Throws: `StoreError.idempotencyConflict` when the key was used for another body.
    func submit(_ job: NewJob) async throws -> SubmitOutcome

    /// A job, scoped to its owner when `userID` is given (someone else's job is `nil`).
    func job(_ id: JobID, userID: UserID?) async throws -> JobRecord?

    /// The job a user submitted earlier with this idempotency key, if any.
    func job(idempotencyKey key: String, userID: UserID) async throws -> JobRecord?

    /// A user's jobs, newest first, starting after `cursor` (exclusive).
    func jobs(userID: UserID, filter: JobFilter, after cursor: JobID?, limit: Int) async throws -> [JobRecord]

    /// How many claimable jobs would be claimed before this queued one; `nil` if not queued.
    func queuePosition(of id: JobID) async throws -> Int?

    /// Cancels a queued job at once, flags a running one; terminal jobs are returned as they are.
    func requestCancel(_ id: JobID, userID: UserID?) async throws -> JobRecord?

    /// Claims the most urgent claimable job with a lease for `owner`: by priority, then the
    /// user with the fewest running jobs, then FIFO; users at their `max_running` are skipped
    /// and jobs of users whose daily budget is spent are refused (`LimitStore`). Recovers
    /// expired leases first.
    func claim(owner: String, lease: Duration) async throws -> JobRecord?

    /// Extends the owner's lease.
    func heartbeat(_ id: JobID, owner: String, lease: Duration) async throws -> HeartbeatResult

    /// Appends events with the next sequence numbers, keeping the job's log within `byteLimit`
    /// bytes (`NewEvent.byteCount` summed over every event the job ever logged).
    ///
    /// The events that fit are appended in order and the rest are refused, all in one
    /// transaction: the log stays dense (no gap, no partial event) and its byte count exact, so
    /// a runaway agent cannot fill the disk and readers never see a hole. Subscribers are woken
    /// once after the commit.
    /// - Throws: `StoreError.leaseLost` unless `owner` holds the job's lease.
    func appendEvents(_ id: JobID, owner: String, _ events: [NewEvent], byteLimit: Int64) async throws -> EventAppend

    /// Ends the owner's attempt.
    /// - Throws: `StoreError.leaseLost` unless `owner` holds the job's lease.
    @discardableResult
    func complete(_ id: JobID, owner: String, with completion: JobCompletion) async throws -> JobRecord

    /// Gives the job back to the queue without using up an attempt (graceful shutdown).
    func release(_ id: JobID, owner: String) async throws

    /// Requeues (or fails with `E010`) every running job whose lease has expired.
    @discardableResult
    func recoverExpiredLeases() async throws -> Int

    /// Events with `seq > after`, in order, at most `limit`.
    func events(of id: JobID, after: Int64, limit: Int) async throws -> [JobEvent]

    /// Job counts per state.
    func stats() async throws -> QueueStats

    /// Whether the store answers (for `/readyz`).
    func ping() async throws
}

extension JobStore {
    /// Appends events with no size limit; returns the last sequence number.
    /// - Throws: `StoreError.leaseLost` unless `owner` holds the job's lease.
    public func appendEvents(_ id: JobID, owner: String, _ events: [NewEvent]) async throws -> Int64 {
        try await appendEvents(id, owner: owner, events, byteLimit: .max).lastSeq
    }
}
