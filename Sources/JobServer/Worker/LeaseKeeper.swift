import Logging
import Queue
import Sandbox

/// Keeps a running job's lease alive and stops the agent when the job is cancelled or the
/// lease is lost. It heartbeats every `interval` and at once whenever a cancellation is
/// committed anywhere (the store's `.cancel` channel), so a cancel takes effect in
/// milliseconds, not a heartbeat period.
struct LeaseKeeper: Sendable {
    let store: any JobStore
    let jobID: JobID
    let owner: String
    let lease: Duration
    let interval: Duration
    let logger: Logger

    enum Stop: Sendable { case cancelled, leaseLost }

    /// Runs until the task is cancelled or a stop is found; returns why it stopped (nil when
    /// cancelled). The claim has just set the lease, so the first heartbeat comes after one
    /// interval, or at once when a cancellation is committed meanwhile.
    /// - Parameter since: the `.cancel` generation read before the job was claimed, so a
    ///   cancellation committed between the claim and this call is not missed.
    func run(since: UInt64, onStop: @Sendable (Stop) -> Void) async -> Stop? {
        let feed = store.changes
        var generation = since
        while !Task.isCancelled {
            await feed.wait(for: .cancel, after: generation, timeout: interval)
            if Task.isCancelled { return nil }
            generation = feed.generation(of: .cancel)
            do {
                switch try await store.heartbeat(jobID, owner: owner, lease: lease) {
                case .renewed(_, let cancelRequested):
                    if cancelRequested {
                        onStop(.cancelled)
                        return .cancelled
                    }
                case .lost:
                    logger.warning("lease lost", metadata: ["job_id": "\(jobID)"])
                    onStop(.leaseLost)
                    return .leaseLost
                }
            } catch {
                // Cancelled when the job ends; anything else is retried on the next tick.
                if Task.isCancelled { return nil }
                logger.warning("heartbeat failed", metadata: ["job_id": "\(jobID)", "error": "\(error)"])
            }
        }
        return nil
    }
}
