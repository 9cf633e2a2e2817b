import Queue

/// Moves one job's events from its shared tail into one connection's queue, from a position
/// to the job's `end` message.
///
/// Until it first catches up with the head, the pump replays at the client's pace (it waits
/// for room in the queue). From then on events are pushed as they arrive; if the queue cannot
/// take them the client is too slow and the pump fails with `StreamFailure.slowConsumer`.
struct EventPump: Sendable {
    let tail: JobEventTail
    let queue: OutboundQueue
    let generation: UInt64
    let configuration: StreamingConfiguration

    /// Streams every event after `position`, then the `end` message.
    /// - Throws: `StreamFailure` (slow consumer, job gone), store errors, `CancellationError`.
    func run(after position: Int64) async throws {
        var position = position
        var live = false
        let liveBudget = JobEventTail.Budget(messages: configuration.pageSize, bytes: configuration.queueBytes)
        while true {
            let budget = live ? liveBudget : try await queue.room()
            switch try await tail.read(after: position, budget: budget) {
            case .messages(let batch, let caughtUp):
                guard let last = batch.last?.seq else { continue }
                guard queue.push(batch, job: tail.jobID, generation: generation, live: live) else {
                    throw StreamFailure.slowConsumer
                }
                position = last
                if caughtUp { live = true }
            case .end(let message):
                // One message, never refused: a client that fell behind still learns the outcome.
                _ = queue.push([message], job: tail.jobID, generation: generation, live: false)
                return
            }
        }
    }
}

extension EventPump {
    /// Follows `job` for one connection through the process's shared tail of the job: returns
    /// once its `end` message is queued.
    /// - Throws: as `run(after:)`.
    static func follow(
        _ job: JobID, after: Int64, generation: UInt64, hub: JobEventHub, queue: OutboundQueue
    ) async throws {
        try await hub.withTail(of: job) { tail in
            try await EventPump(tail: tail, queue: queue, generation: generation, configuration: hub.configuration)
                .run(after: after)
        }
    }
}
