import Synchronization

/// Batches concurrent requests into one write transaction ("group commit").
///
/// The first caller to arrive while no batch is being written becomes the writer: it takes
/// everything queued so far, writes it in one transaction, hands each caller its own result,
/// and repeats while more arrived meanwhile. Throughput under concurrency then scales with the
/// batch size, while a lone request is written at once, with no added delay. Each request's
/// result is its own (one bad request fails only itself); an error of the transaction as a
/// whole fails every request of that batch, and none of them is committed.
///
/// A mutex rather than an actor guards the queue: enqueueing never hops executors, which is
/// measurable on a path every submission takes.
final class GroupCommit<Request: Sendable, Response: Sendable>: Sendable {
    typealias Writer = @Sendable ([Request]) async throws -> [Result<Response, any Error>]
    private typealias Waiter = (Request, CheckedContinuation<Response, any Error>)

    private struct State {
        var pending: [Waiter] = []
        var writing = false
    }

    private let writer: Writer
    private let maxBatch: Int
    private let state = Mutex(State())

    init(maxBatch: Int = 256, writer: @escaping Writer) {
        self.maxBatch = maxBatch
        self.writer = writer
    }

    func submit(_ request: Request) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            let lead = state.withLock { state in
                state.pending.append((request, continuation))
                guard !state.writing else { return false }
                state.writing = true
                return true
            }
            // The first request of a burst starts the drain; it runs until the queue is empty,
            // so no request is ever left waiting on work nobody drives.
            if lead { Task { await self.drain() } }
        }
    }

    private func drain() async {
        while true {
            let batch = state.withLock { state -> [Waiter] in
                let batch = Array(state.pending.prefix(maxBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.writing = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                let results = try await writer(batch.map(\.0))
                for ((_, continuation), result) in zip(batch, results) { continuation.resume(with: result) }
            } catch {
                for (_, continuation) in batch { continuation.resume(throwing: error) }
            }
        }
    }
}
