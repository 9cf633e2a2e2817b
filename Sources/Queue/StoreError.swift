/// Failures of a store operation, each mapped to the service's error codes.
public enum StoreError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The idempotency key was used before for a different request body.
    case idempotencyConflict(existing: JobID)
    /// The caller no longer holds the job's lease (it expired, or the job ended).
    case leaseLost(JobID)
    /// No such job, user or token.
    case notFound(String)
    /// A unique name is taken (a user name).
    case duplicate(String)
    /// The store stayed locked by other processes past the bounded wait.
    case busy(String)
    /// The store could not be opened, migrated, read or written.
    case unavailable(String)

    public var code: ErrorCode {
        switch self {
        case .idempotencyConflict, .duplicate: .conflict
        case .notFound: .notFound
        case .leaseLost: .workerLost
        case .busy, .unavailable: .internal
        }
    }

    public var description: String {
        switch self {
        case .idempotencyConflict(let existing): "idempotency key already used for another request (job \(existing))"
        case .leaseLost(let id): "lease on \(id) lost"
        case .notFound(let what): "\(what) not found"
        case .duplicate(let what): "\(what) already exists"
        case .busy(let what): "store busy: \(what)"
        case .unavailable(let what): "store unavailable: \(what)"
        }
    }
}
