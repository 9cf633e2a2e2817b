import Foundation

/// The job state machine of DESIGN §3, as pure transitions over a `JobRecord`.
///
/// Engines load a row inside their write transaction, ask the lifecycle for the next state and
/// write it back, so every engine enforces exactly the same rules: terminal states never change,
/// only the lease owner moves a running job, and a lost lease either requeues the job for its
/// next attempt or fails it with `E010`.
public enum JobLifecycle {
    /// Why a transition was refused.
    public enum Refusal: Error, Sendable, Hashable {
        case notClaimable
        case notLeaseOwner
        case terminal
    }

    public static func claim(_ job: JobRecord, owner: String, now: Date, lease: Duration) throws(Refusal) -> JobRecord {
        guard job.status == .queued, job.notBefore <= now else { throw .notClaimable }
        var next = job
        next.status = .running
        next.leaseOwner = owner
        next.leaseExpiresAt = now.adding(lease)
        if next.startedAt == nil { next.startedAt = now }
        return next
    }

    public static func heartbeat(_ job: JobRecord, owner: String, now: Date, lease: Duration) throws(Refusal) -> JobRecord {
        try requireOwner(job, owner, now: now)
        var next = job
        next.leaseExpiresAt = now.adding(lease)
        return next
    }

    /// Ends the owner's attempt. A `.retry` requeues the job with a delay while attempts remain.
    public static func complete(_ job: JobRecord, owner: String, with completion: JobCompletion, now: Date) throws(Refusal) -> JobRecord {
        try requireOwner(job, owner, now: now)
        var next = job
        next.leaseOwner = nil
        next.leaseExpiresAt = nil
        switch completion {
        case .succeeded(let result, let metrics):
            next.finish(.succeeded, at: now, result: result, metrics: metrics, error: nil)
        case .failed(let error, let result, let metrics):
            next.finish(.failed, at: now, result: result, metrics: metrics, error: error)
        case .cancelled(let result, let metrics):
            next.finish(.cancelled, at: now, result: result, metrics: metrics,
                        error: JobError(.cancelled, "cancelled by the user"))
        case .retry(let error, let delay, let metrics):
            if job.attempt < job.maxAttempts, !job.cancelRequested {
                next.status = .queued
                next.attempt += 1
                next.notBefore = now.adding(delay)
                next.error = error
                next.metrics = metrics
            } else {
                next.finish(.failed, at: now, result: nil, metrics: metrics, error: error)
            }
        }
        return next
    }

    /// Gives a running job back without counting an attempt (graceful worker shutdown).
    public static func release(_ job: JobRecord, owner: String, now: Date) throws(Refusal) -> JobRecord {
        try requireOwner(job, owner, now: now)
        var next = job
        next.leaseOwner = nil
        next.leaseExpiresAt = nil
        if job.cancelRequested {
            next.finish(.cancelled, at: now, result: nil, metrics: nil, error: JobError(.cancelled, "cancelled by the user"))
        } else {
            next.status = .queued
            next.notBefore = now
        }
        return next
    }

    /// Recovers a running job whose lease has expired; `nil` while the lease still holds.
    public static func expire(_ job: JobRecord, now: Date) -> JobRecord? {
        guard job.status == .running, let expiry = job.leaseExpiresAt, expiry <= now else { return nil }
        var next = job
        next.leaseOwner = nil
        next.leaseExpiresAt = nil
        if job.cancelRequested {
            next.finish(.cancelled, at: now, result: nil, metrics: nil, error: JobError(.cancelled, "cancelled by the user"))
        } else if job.attempt < job.maxAttempts {
            next.status = .queued
            next.attempt += 1
            next.notBefore = now
        } else {
            next.finish(.failed, at: now, result: nil, metrics: nil, error: JobError(
                .workerLost, "the worker running this job stopped responding \(job.maxAttempts) time(s)",
                details: .object(["attempts": .number(Double(job.attempt))])))
        }
        return next
    }

    /// Fails a queued job that may not start (its user's daily budget is spent) without
    /// running it; `E002` tells the client to submit again once the budget resets.
    public static func refuse(_ job: JobRecord, because error: JobError, now: Date) throws(Refusal) -> JobRecord {
        guard job.status == .queued else { throw job.status.isTerminal ? .terminal : .notClaimable }
        var next = job
        next.finish(.failed, at: now, result: nil, metrics: nil, error: error)
        return next
    }

    /// A queued job is cancelled at once; a running one is flagged for its worker to stop.
    public static func requestCancel(_ job: JobRecord, now: Date) -> JobRecord {
        var next = job
        switch job.status {
        case .queued:
            next.finish(.cancelled, at: now, result: nil, metrics: nil, error: JobError(.cancelled, "cancelled by the user"))
        case .running:
            next.cancelRequested = true
        case .succeeded, .failed, .cancelled:
            break
        }
        return next
    }

    private static func requireOwner(_ job: JobRecord, _ owner: String, now: Date) throws(Refusal) {
        if job.status.isTerminal { throw .terminal }
        guard job.status == .running, job.leaseOwner == owner,
              let expiry = job.leaseExpiresAt, expiry > now else { throw .notLeaseOwner }
    }
}

extension JobRecord {
    fileprivate mutating func finish(_ status: JobStatus, at now: Date, result: JSONValue?, metrics: JSONValue?, error: JobError?) {
        self.status = status
        self.finishedAt = now
        self.result = result
        self.metrics = metrics
        self.error = error
        self.leaseOwner = nil
        self.leaseExpiresAt = nil
    }
}

extension Date {
    /// `self` moved forward by a Swift `Duration`.
    public func adding(_ duration: Duration) -> Date {
        let (seconds, attoseconds) = duration.components
        return addingTimeInterval(Double(seconds) + Double(attoseconds) / 1e18)
    }
}
