import Queue
import Synchronization

/// The recent events of one job, shared by every subscriber of that job in this process.
///
/// One subscriber at a time is the *fetcher*: it waits on the store's change feed for the job
/// (a cross-process wake-up when the worker commits, never a polling loop), reads what is new
/// and appends it, encoded once, to a bounded in-memory window. The others wait for the window
/// to move and take their slice of it; a subscriber whose position has left the window (a
/// replay from far back, a slow reader) reads the store directly. When the fetcher goes away
/// (its client disconnected) the role passes to whoever is waiting, so no background task is
/// needed and none outlives its subscribers: all the work runs in the subscribers' own tasks.
///
/// Once the job is terminal and its log fully read, the tail holds the `end` message and every
/// subscriber that reaches the head gets it.
final class JobEventTail: Sendable {
    let jobID: JobID
    private let store: any JobStore
    private let configuration: StreamingConfiguration
    private let state = Mutex(State())
    /// Subscribers waiting for the window to move, the end, or the fetcher role.
    private let lot = ParkingLot()

    /// What a subscriber gets from `read`.
    enum Read: Sendable {
        /// Events after the position, in order; `caughtUp` when nothing newer is known yet.
        case messages([StreamMessage], caughtUp: Bool)
        /// The job is over and every event before this message was delivered.
        case end(StreamMessage)
    }

    /// How much a subscriber may take at once.
    struct Budget: Sendable {
        var messages: Int
        var bytes: Int
    }

    /// How long the fetcher waits for a wake-up before looking at the store anyway; only a
    /// safety net (a lost notification), never the normal path.
    static let safetyInterval = Duration.seconds(5)

    init(jobID: JobID, store: any JobStore, configuration: StreamingConfiguration) {
        self.jobID = jobID
        self.store = store
        self.configuration = configuration
    }

    /// The next messages after `position` within `budget` (at least one), or the end; waits
    /// while there is nothing new.
    /// - Throws: `CancellationError` when the calling task is cancelled, store errors.
    func read(after position: Int64, budget: Budget) async throws -> Read {
        while true {
            try Task.checkCancellation()
            let version = lot.version
            let step = state.withLock { $0.next(after: position, budget: budget) }
            switch step {
            case .deliver(let read):
                return read
            case .readStore:
                let page = try await store.events(of: jobID, after: position, limit: min(budget.messages, configuration.pageSize))
                guard let read = Self.slice(page.map { StreamMessage.event($0, of: jobID) }, budget: budget) else {
                    // The log is append-only: events that were read once cannot be missing.
                    throw StreamFailure(.notFound, "the job's event log is gone")
                }
                return read
            case .wait:
                await lot.park(after: version)
            case .fetch(let from):
                try await fetch(after: from)
            }
        }
    }

    // MARK: - Fetching

    /// Reads what follows `from` (waiting on the change feed while there is nothing), appends it
    /// or records the end, then gives up the fetcher role on every path.
    private func fetch(after from: Int64) async throws {
        do {
            while true {
                let generation = store.changes.generation(of: .events(jobID))
                let page = try await store.events(of: jobID, after: from, limit: configuration.pageSize)
                if !page.isEmpty {
                    let messages = page.map { StreamMessage.event($0, of: jobID) }
                    // A short page reached the end of the log as it was; a full one may not have.
                    let atLogEnd = page.count < configuration.pageSize
                    state.withLock { $0.append(messages, atLogEnd: atLogEnd, limits: configuration) }
                    lot.unparkAll()
                    return
                }
                guard let job = try await store.job(jobID, userID: nil) else { throw StreamFailure.jobNotFound }
                if job.status.isTerminal {
                    // Events committed between the page and the job read are fetched first.
                    if job.lastEventSeq > from { continue }
                    state.withLock { $0.finish(with: .end(job), head: from) }
                    lot.unparkAll()
                    return
                }
                let woken = await store.changes.wait(for: .events(jobID), after: generation, timeout: Self.safetyInterval)
                if !woken { try Task.checkCancellation() }
            }
        } catch {
            state.withLock { $0.fetching = false }
            lot.unparkAll()
            throw error
        }
    }

    /// The first messages of `messages` within `budget` (always at least one), `nil` when empty.
    static func slice(_ messages: [StreamMessage], budget: Budget) -> Read? {
        guard !messages.isEmpty else { return nil }
        var count = 0
        var bytes = 0
        for message in messages.prefix(max(1, budget.messages)) {
            if count > 0, bytes + message.byteCount > budget.bytes { break }
            count += 1
            bytes += message.byteCount
        }
        return .messages(Array(messages.prefix(count)), caughtUp: false)
    }
}

extension JobEventTail {
    /// What a subscriber does next.
    enum Step {
        case deliver(Read)
        /// The position is older than the window: read the store.
        case readStore
        /// Someone else is fetching: wait until the tail changes.
        case wait
        /// Become the fetcher, reading after this position.
        case fetch(Int64)
    }

    struct State {
        /// The window: consecutive events `firstSeq...head`.
        var window: [StreamMessage] = []
        var firstSeq: Int64 = 1
        var head: Int64 = 0
        var bytes = 0
        var end: StreamMessage?
        var fetching = false
        /// Whether `head` was the last event of the log when it was read: only then is a
        /// subscriber at the head caught up (rather than between two pages of a replay).
        var atLogEnd = false

        mutating func next(after position: Int64, budget: Budget) -> Step {
            if position < head {
                guard position + 1 >= firstSeq, !window.isEmpty else { return .readStore }
                let start = Int(position + 1 - firstSeq)
                var end = start
                var taken = 0
                while end < window.count, end - start < max(1, budget.messages) {
                    let size = window[end].byteCount
                    if end > start, taken + size > budget.bytes { break }
                    taken += size
                    end += 1
                }
                return .deliver(.messages(Array(window[start..<end]), caughtUp: end == window.count && atLogEnd))
            }
            if let message = self.end { return .deliver(.end(message)) }
            if fetching { return .wait }
            fetching = true
            // An empty window may start anywhere: a subscriber far ahead need not fetch from 0.
            return .fetch(window.isEmpty ? max(head, position) : head)
        }

        /// Appends a page read after `head` (or after an empty window's start), trims the window
        /// to its limits and releases the fetcher role.
        mutating func append(_ messages: [StreamMessage], atLogEnd: Bool, limits: StreamingConfiguration) {
            self.atLogEnd = atLogEnd
            if let first = messages.first?.seq, window.isEmpty || first != head + 1 {
                window.removeAll()
                bytes = 0
                firstSeq = first
            }
            window.append(contentsOf: messages)
            bytes += messages.reduce(0) { $0 + $1.byteCount }
            head = messages.last?.seq ?? head
            var drop = 0
            var dropped = 0
            while window.count - drop > limits.cacheEvents || (bytes - dropped > limits.cacheBytes && window.count - drop > 1) {
                dropped += window[drop].byteCount
                drop += 1
            }
            if drop > 0 {
                window.removeFirst(drop)
                bytes -= dropped
                firstSeq += Int64(drop)
            }
            fetching = false
        }

        mutating func finish(with message: StreamMessage, head: Int64) {
            end = message
            self.head = max(self.head, head)
            fetching = false
        }
    }
}
