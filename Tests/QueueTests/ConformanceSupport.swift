import Foundation
import Queue
import TestSupport
import Testing

/// What the conformance suite needs from an engine.
typealias ConformingStore = AccountStore & JobStore

/// An engine under test. The suite is written only against `JobStore`/`AccountStore`; adding
/// an engine (PostgreSQL) means adding one factory here and to `StoreEngine.all`.
struct StoreEngine: Sendable, CustomTestStringConvertible {
    let name: String
    /// Opens a fresh, empty store keeping its files under `directory`, using `clock`.
    let make: @Sendable (_ directory: String, _ clock: ManualClock) async throws -> any ConformingStore

    var testDescription: String { name }

    static let sqlite = StoreEngine(name: "sqlite") { directory, clock in
        try SQLiteJobStore(path: directory + "/store.db", clock: clock)
    }

    static let all: [StoreEngine] = [.sqlite]
}

/// Runs `body` against a fresh store of `engine` and a manual clock.
func withStore(
    _ engine: StoreEngine,
    _ body: (any ConformingStore, ManualClock) async throws -> Void
) async throws {
    try await withTemporaryDirectory { directory in
        let clock = ManualClock()
        let store = try await engine.make(directory, clock)
        try await body(store, clock)
    }
}

let alice = UserID(rawValue: "usr_alice")
let bob = UserID(rawValue: "usr_bob")

/// A submission with sensible defaults.
func newJob(
    _ user: UserID = alice, kind: String = "agent", project: String = "demo", priority: Int = 0,
    maxAttempts: Int = 3, notBefore: Date? = nil, key: String? = nil, hash: String? = nil,
    payload: JSONValue = .object(["prompt": .string("hello"), "n": .number(42)])
) -> NewJob {
    NewJob(
        userID: user, kind: kind, project: project, priority: priority, maxAttempts: maxAttempts,
        payload: payload, notBefore: notBefore, idempotencyKey: key, requestHash: hash)
}

extension JobStore {
    /// Submits and returns the created job (the test fails if it was not new).
    func submitNew(_ job: NewJob) async throws -> JobRecord {
        let outcome = try await submit(job)
        guard case .created(let record) = outcome else {
            Issue.record("expected a new job, got \(outcome)")
            return outcome.job
        }
        return record
    }

    /// Claims, requiring that a job was claimable.
    func claimRequired(_ owner: String = "worker-1", lease: Duration = .seconds(30),
                       sourceLocation: SourceLocation = #_sourceLocation) async throws -> JobRecord {
        try #require(await claim(owner: owner, lease: lease), sourceLocation: sourceLocation)
    }
}
