import Queue

/// Collects a job's events and writes them to the store in batches, so a chatty agent costs
/// one transaction per batch rather than one per line. Batches are flushed when they grow
/// past `maxBatch` or when the flush loop ticks (every few milliseconds).
actor EventBatcher {
    private let store: any JobStore
    private let jobID: JobID
    private let owner: String
    private let maxBatch: Int
    private var pending: [NewEvent] = []
    private(set) var leaseLost = false

    init(store: any JobStore, jobID: JobID, owner: String, maxBatch: Int = 256) {
        self.store = store
        self.jobID = jobID
        self.owner = owner
        self.maxBatch = maxBatch
    }

    func add(_ event: NewEvent) async {
        pending.append(event)
        if pending.count >= maxBatch { await flush() }
    }

    /// Writes what is pending. A lost lease stops all further writes for this attempt.
    func flush() async {
        guard !pending.isEmpty, !leaseLost else { return }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        do {
            _ = try await store.appendEvents(jobID, owner: owner, batch)
        } catch StoreError.leaseLost {
            leaseLost = true
        } catch {
            // Keep the events and try again on the next flush; the store retries busy errors itself.
            pending.insert(contentsOf: batch, at: 0)
        }
    }

    /// Flushes every `interval` until cancelled.
    func runFlushLoop(interval: Duration) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            await flush()
        }
    }
}
