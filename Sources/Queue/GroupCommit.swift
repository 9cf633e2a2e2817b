/// Batches concurrent requests into one write transaction ("group commit").
///
/// The first caller to arrive while no batch is being written becomes the writer: it takes
/// everything queued so far, writes it in one transaction, hands each caller its own result,
/// and repeats while more arrived meanwhile. Throughput under concurrency then scales with the
/// batch size, while a lone request is written at once, with no added delay. Each request's
/// result is its own (one bad request fails only itself); an error of the transaction as a
/// whole fails every request of that batch, and none of them is committed.
actor GroupCommit<Request: Sendable, Response: Sendable> {
    typealias Writer = @Sendable ([Request]) async throws -> [Result<Response, any Error>]

    private let writer: Writer
    private let maxBatch: Int
    private var pending: [(Request, CheckedContinuation<Response, any Error>)] = []
    private var writing = false

    init(maxBatch: Int = 256, writer: @escaping Writer) {
        self.maxBatch = maxBatch
        self.writer = writer
    }

    func submit(_ request: Request) async throws -> Response {
        try await withCheckedThrowingContinuation { continuation in
            pending.append((request, continuation))
            if !writing {
                writing = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(maxBatch))
            pending.removeFirst(batch.count)
            do {
                let results = try await writer(batch.map(\.0))
                for ((_, continuation), result) in zip(batch, results) { continuation.resume(with: result) }
            } catch {
                for (_, continuation) in batch { continuation.resume(throwing: error) }
            }
        }
        writing = false
    }
}
