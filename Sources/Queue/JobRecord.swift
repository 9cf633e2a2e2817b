import Foundation

/// Where a job is in its life. Terminal states never change again.
public enum JobStatus: String, Sendable, Codable, CaseIterable, Hashable {
    case queued, running, succeeded, failed, cancelled

    public var isTerminal: Bool {
        switch self {
        case .queued, .running: false
        case .succeeded, .failed, .cancelled: true
        }
    }
}

/// A job as the store keeps it.
///
/// The store interprets only the scheduling fields; `payload` (the submitted request), `result`
/// and `metrics` are opaque JSON owned by the API and the worker.
public struct JobRecord: Sendable, Hashable, Codable {
    public var id: JobID
    public var userID: UserID
    public var kind: String
    public var project: String
    public var status: JobStatus
    public var priority: Int
    public var payload: JSONValue
    /// The current attempt, starting at 1; a lost lease moves the job to the next attempt.
    public var attempt: Int
    public var maxAttempts: Int
    public var createdAt: Date
    /// The job is not claimed before this instant (delayed retries).
    public var notBefore: Date
    public var startedAt: Date?
    public var finishedAt: Date?
    public var leaseOwner: String?
    public var leaseExpiresAt: Date?
    public var cancelRequested: Bool
    public var result: JSONValue?
    public var metrics: JSONValue?
    public var error: JobError?
    /// The sequence number of the last event appended (events are numbered densely from 1).
    public var lastEventSeq: Int64
    public var idempotencyKey: String?
    public var requestHash: String?

    public init(
        id: JobID, userID: UserID, kind: String, project: String, status: JobStatus = .queued,
        priority: Int = 0, payload: JSONValue, attempt: Int = 1, maxAttempts: Int = 3,
        createdAt: Date, notBefore: Date? = nil, startedAt: Date? = nil, finishedAt: Date? = nil,
        leaseOwner: String? = nil, leaseExpiresAt: Date? = nil, cancelRequested: Bool = false,
        result: JSONValue? = nil, metrics: JSONValue? = nil, error: JobError? = nil,
        lastEventSeq: Int64 = 0, idempotencyKey: String? = nil, requestHash: String? = nil
    ) {
        self.id = id
        self.userID = userID
        self.kind = kind
        self.project = project
        self.status = status
        self.priority = priority
        self.payload = payload
        self.attempt = attempt
        self.maxAttempts = maxAttempts
        self.createdAt = createdAt
        self.notBefore = notBefore ?? createdAt
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.leaseOwner = leaseOwner
        self.leaseExpiresAt = leaseExpiresAt
        self.cancelRequested = cancelRequested
        self.result = result
        self.metrics = metrics
        self.error = error
        self.lastEventSeq = lastEventSeq
        self.idempotencyKey = idempotencyKey
        self.requestHash = requestHash
    }
}

/// A submission as the API hands it to the store.
public struct NewJob: Sendable, Hashable {
    public var userID: UserID
    public var kind: String
    public var project: String
    public var priority: Int
    public var maxAttempts: Int
    public var payload: JSONValue
    public var notBefore: Date?
    /// With `requestHash`, makes the submission idempotent per user: the same key and hash
    /// return the original job; the same key with another hash is a conflict.
    public var idempotencyKey: String?
    public var requestHash: String?

    public init(
        userID: UserID, kind: String, project: String, priority: Int = 0, maxAttempts: Int = 3,
        payload: JSONValue, notBefore: Date? = nil, idempotencyKey: String? = nil, requestHash: String? = nil
    ) {
        self.userID = userID
        self.kind = kind
        self.project = project
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.payload = payload
        self.notBefore = notBefore
        self.idempotencyKey = idempotencyKey
        self.requestHash = requestHash
    }
}

/// What `submit` did.
public enum SubmitOutcome: Sendable, Hashable {
    /// A new job was stored and committed.
    case created(JobRecord)
    /// The idempotency key matched an earlier submission with the same body.
    case existing(JobRecord)

    public var job: JobRecord {
        switch self {
        case .created(let job), .existing(let job): job
        }
    }
}

/// How a worker ends its attempt at a job.
public enum JobCompletion: Sendable, Hashable {
    case succeeded(result: JSONValue?, metrics: JSONValue?)
    case failed(JobError, result: JSONValue?, metrics: JSONValue?)
    case cancelled(result: JSONValue?, metrics: JSONValue?)
    /// Put the job back in the queue for another attempt no earlier than `after`, or fail it
    /// with `error` when it has no attempts left.
    case retry(JobError, after: Duration, metrics: JSONValue?)
}

/// What a heartbeat found.
public enum HeartbeatResult: Sendable, Hashable {
    /// The lease is extended; `cancelRequested` tells the worker to stop the job.
    case renewed(expiresAt: Date, cancelRequested: Bool)
    /// The lease is no longer this worker's (expired and recovered, or the job ended).
    case lost
}

/// Filters for listing a user's jobs; `nil` fields match everything.
public struct JobFilter: Sendable, Hashable {
    public var status: JobStatus?
    public var kind: String?
    public var project: String?

    public init(status: JobStatus? = nil, kind: String? = nil, project: String? = nil) {
        self.status = status
        self.kind = kind
        self.project = project
    }
}

/// Counts of jobs per state, for `/metrics` and admin inspection.
public struct QueueStats: Sendable, Hashable, Codable {
    public var counts: [JobStatus: Int]
    public var oldestQueuedAt: Date?

    public init(counts: [JobStatus: Int], oldestQueuedAt: Date?) {
        self.counts = counts
        self.oldestQueuedAt = oldestQueuedAt
    }
}
