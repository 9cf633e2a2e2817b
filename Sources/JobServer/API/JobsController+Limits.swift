import Foundation
import Queue

extension JobsController {
    /// Stores a submission through the store's admission (rate, `max_queued`, daily budgets,
    /// queue cap), turning a refusal into its documented answer: `429 E002` or `503 E015`
    /// with `Retry-After` and the `RateLimit` fields.
    func admit(_ job: NewJob) async throws -> AdmittedSubmission {
        do {
            return try await store.submit(job, admission: admission)
        } catch let refusal as LimitRefusal {
            throw APIError(refusal)
        }
    }
}
