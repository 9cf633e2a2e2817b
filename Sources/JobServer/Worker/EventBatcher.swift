import Queue

/// Collects a job's events and writes them to the store in batches (DESIGN §5).
///
/// Latency and write volume are traded like a group commit: when the flush loop is idle the
/// first event is written at once (a lone line reaches subscribers within one commit), and
/// everything that arrives while a batch is being committed, or within `minimumInterval` after
/// it, goes into the next batch. A chatty agent therefore costs at most one transaction per
/// `minimumInterval`, not one per token. Batches are written strictly one after another, so the
/// log keeps the agent's order.
///
/// The job's log is capped at `byteLimit` bytes by the store; once it refuses events the batcher
/// drops everything else and calls `onLogFull` (the runner stops the agent and fails the job
/// with `E008`). A lost lease stops all further writes for this attempt.
actor EventBatcher {
    private let store: any JobStore
    private let jobID: JobID
    private let owner: String
    private let byteLimit: Int64
    private let minimumInterval: Duration
    private let maxBatch: Int
    private let onLogFull: @Sendable () -> Void
    private var pending: [NewEvent] = []
    private var closed = false
    private var consecutiveFailures = 0
    /// The flush loop, parked while nothing is pending.
    private var idleLoop: CheckedContinuation<Void, Never>?
    /// Producers parked while a full batch is pending (back-pressure on the agent's output).
    private var producers: [CheckedContinuation<Void, Never>] = []
    private(set) var leaseLost = false
    private(set) var logFull = false

    /// Attempts at one batch after `close()` before it is given up (the store retries busy
    /// errors itself for a long while before failing).
    private static let attemptsAfterClose = 5

    init(store: any JobStore, jobID: JobID, owner: String, byteLimit: Int64 = .max,
         minimumInterval: Duration = .milliseconds(5), maxBatch: Int = 256,
         onLogFull: @escaping @Sendable () -> Void = {}) {
        self.store = store
        self.jobID = jobID
        self.owner = owner
        self.byteLimit = byteLimit
        self.minimumInterval = minimumInterval
        self.maxBatch = maxBatch
        self.onLogFull = onLogFull
    }

    private var stopped: Bool { leaseLost || logFull }

    /// Queues an event; waits while a full batch is already pending.
    func add(_ event: NewEvent) async {
        guard !stopped else { return }
        pending.append(event)
        wakeLoop()
        while pending.count >= maxBatch, !stopped, !closed {
            await withCheckedContinuation { producers.append($0) }
        }
    }

    /// Ends `run()` once everything pending is written.
    func close() {
        closed = true
        wakeLoop()
    }

    /// Writes batches until `close()`; returns after the last one. Runs in the job's task group.
    func run() async {
        while true {
            if pending.isEmpty || stopped {
                pending.removeAll()
                releaseProducers()
                if closed { return }
                await withCheckedContinuation { idleLoop = $0 }
                continue
            }
            await flush()
            releaseProducers()
            if !closed || consecutiveFailures > 0 {
                // Coalesce: what arrives meanwhile is written as one batch (after a failure, a pause).
                try? await Task.sleep(for: minimumInterval)
            }
        }
    }

    private func flush() async {
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        do {
            let outcome = try await store.appendEvents(jobID, owner: owner, batch, byteLimit: byteLimit)
            consecutiveFailures = 0
            if outcome.refused > 0 {
                logFull = true
                pending.removeAll()
                onLogFull()
            }
        } catch StoreError.leaseLost {
            leaseLost = true
            pending.removeAll()
        } catch {
            // Keep the events (in front of newer ones) and try again after a pause.
            consecutiveFailures += 1
            if closed, consecutiveFailures >= Self.attemptsAfterClose { return }
            pending.insert(contentsOf: batch, at: 0)
        }
    }

    private func wakeLoop() {
        idleLoop?.resume()
        idleLoop = nil
    }

    private func releaseProducers() {
        let parked = producers
        producers.removeAll()
        for producer in parked { producer.resume() }
    }
}
