import Crypto
import Foundation
import Queue

/// Validates and stores one job submission: the one path behind `POST /v1/jobs` and the
/// `submit` action of the `/v1/stream` WebSocket, so both answer the same errors (DESIGN §4).
struct JobSubmission: Sendable {
    let store: any JobStore
    let workspaces: WorkspaceStore
    /// Per-user limits and the queue cap, checked in the store with the insert.
    var admission = Admission()

    /// The submitted job and whether an earlier submission with the same idempotency key
    /// answered it (`replayed`).
    struct Outcome: Sendable {
        var job: JobRecord
        var replayed: Bool
        /// The user's rate-limit state after this submission, for the `RateLimit` fields.
        var rate: RateLimitStatus? = nil
    }

    /// - Throws: `APIError` for invalid requests (`E003`), a missing project or file (`E013`,
    ///   `E004`), `StoreError.idempotencyConflict` for a key reused with another body, and the
    ///   limits' refusals (`E002` 429, `E015` 503) as `APIError`s.
    func submit(_ body: JSONValue, user: User, idempotencyKey key: String?) async throws -> Outcome {
        let jobRequest = try JobRequest.parse(body)
        let payload = jobRequest.json
        if let key, let earlier = try await store.job(idempotencyKey: key, userID: user.id) {
            // A retried submission answers as the first one did, even if the workspace changed since.
            guard earlier.requestHash == Self.hash(payload) else {
                throw StoreError.idempotencyConflict(existing: earlier.id)
            }
            return Outcome(job: earlier, replayed: true)
        }

        let project = try ProjectName(validating: jobRequest.project)
        let workspaces = self.workspaces
        if jobRequest.type != .generate, try await !BlockingIO.run({ try workspaces.projectExists(user: user.id, project: project) }) {
            throw APIError(.notFound, "project '\(project)' not found", status: .notFound,
                           details: .object(["project": .string(project.rawValue)]))
        }
        let existing = jobRequest.files.isEmpty ? [] : Set(try await BlockingIO.run {
            try workspaces.listFiles(user: user.id, project: project).map(\.path)
        })
        for path in jobRequest.files {
            guard existing.contains(path) else {
                throw APIError(.fileAccess, "file '\(path)' not found in project '\(project)'", status: .notFound,
                               details: .object(["path": .string(path)]))
            }
        }

        let admitted: AdmittedSubmission
        do {
            admitted = try await store.submit(NewJob(
                userID: user.id, kind: jobRequest.type.rawValue, project: jobRequest.project,
                priority: jobRequest.priority, maxAttempts: jobRequest.options.maxAttempts, payload: payload,
                idempotencyKey: key, requestHash: key.map { _ in Self.hash(payload) }), admission: admission)
        } catch let refusal as LimitRefusal {
            throw APIError(refusal)
        }
        let outcome = admitted.outcome
        if case .existing = outcome { return Outcome(job: outcome.job, replayed: true) }
        return Outcome(job: outcome.job, replayed: false, rate: admitted.rate)
    }

    /// Checks an idempotency key: 1 to 255 visible ASCII characters.
    static func validateIdempotencyKey(_ key: String, field: String) throws(APIError) -> String {
        guard !key.isEmpty, key.utf8.count <= 255, key.unicodeScalars.allSatisfy({ $0.value >= 0x21 && $0.value < 0x7f }) else {
            throw APIError.invalid("\(field) must be 1 to 255 visible ASCII characters", field: field)
        }
        return key
    }

    static func hash(_ payload: JSONValue) -> String {
        var bytes: [UInt8] = []
        payload.write(to: &bytes)
        return TokenHasher.hex(SHA256.hash(data: bytes))
    }
}
