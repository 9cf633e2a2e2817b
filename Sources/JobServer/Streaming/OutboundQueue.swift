import Queue
import Synchronization

/// The messages waiting for one connection's socket: bounded, so a client that reads slower
/// than its job writes never makes the server buffer without limit.
///
/// Pumps add messages in one of two ways. *Catch-up* (replaying a log the client has not seen
/// yet, and a job's final `end` message) first waits for `room()` and adds no more than that,
/// so it never overflows: a slow reader just replays slowly. *Live* pushes (events that arrived
/// while the client was caught up, and replies) are refused when they would pass the limits;
/// the connection is then closed as a slow consumer (`4008`) and the client resumes from the
/// last sequence number it got.
///
/// Each job's messages carry a generation: restarting a job's stream (a rewind, a new
/// subscription) drops its queued messages and ignores late pushes of the stream it replaced.
final class OutboundQueue: Sendable {
    /// How the queue ended.
    enum Outcome: Sendable, Hashable {
        /// Everything queued is sent, then the connection closes normally.
        case complete
        /// Pending messages are dropped and the connection closes with the failure's code.
        case failed(StreamFailure)
        /// The client closed or vanished: nothing more is sent.
        case clientGone
    }

    let maxMessages: Int
    let maxBytes: Int
    private let state = Mutex(State())
    private let lot = ParkingLot()

    fileprivate struct State {
        var messages: [StreamMessage] = []
        var bytes = 0
        var outcome: Outcome?
        var generations: [JobID: UInt64] = [:]
    }

    init(maxMessages: Int, maxBytes: Int) {
        self.maxMessages = max(1, maxMessages)
        self.maxBytes = max(1, maxBytes)
    }

    var outcome: Outcome? { state.withLock { $0.outcome } }

    /// Adds a pump's messages. Returns `false` when a live push would pass the limits (the
    /// caller then fails the connection); a push from a replaced stream is ignored.
    func push(_ batch: [StreamMessage], job: JobID, generation: UInt64, live: Bool) -> Bool {
        let accepted = state.withLock { state -> Bool? in
            guard state.outcome == nil, state.generations[job] == generation else { return nil }
            return state.append(batch, bounded: live, maxMessages: maxMessages, maxBytes: maxBytes)
        }
        if accepted == true { lot.unparkAll() }
        return accepted ?? true
    }

    /// Adds a reply to a client message; bounded like a live push.
    func reply(_ message: StreamMessage) -> Bool {
        let accepted = state.withLock { state -> Bool in
            guard state.outcome == nil else { return true }
            return state.append([message], bounded: true, maxMessages: maxMessages, maxBytes: maxBytes)
        }
        lot.unparkAll()
        return accepted
    }

    /// Waits until the queue is less than half full and returns how much a catch-up read may
    /// add: up to half the limits, so the other half stays free for live events (a client that
    /// has just caught up is not mistaken for a slow one).
    /// - Throws: `CancellationError` once the queue has ended or the task is cancelled.
    func room() async throws -> JobEventTail.Budget {
        let halfMessages = max(1, maxMessages / 2)
        let halfBytes = max(1, maxBytes / 2)
        while true {
            let version = lot.version
            let room = state.withLock { state -> JobEventTail.Budget? in
                guard state.outcome == nil else { return nil }
                guard state.messages.count < halfMessages, state.bytes < halfBytes else {
                    return JobEventTail.Budget(messages: 0, bytes: 0)
                }
                return JobEventTail.Budget(messages: halfMessages - state.messages.count, bytes: halfBytes - state.bytes)
            }
            guard let room else { throw CancellationError() }
            if room.messages > 0 { return room }
            try Task.checkCancellation()
            await lot.park(after: version)
        }
    }

    /// Everything queued, waiting while the queue is empty; `nil` once it has ended (after
    /// draining, for `.complete`) or the task is cancelled.
    func take() async -> [StreamMessage]? {
        while true {
            let version = lot.version
            let taken = state.withLock { state -> [StreamMessage]?? in
                if !state.messages.isEmpty, state.outcome == nil || state.outcome == .complete {
                    defer {
                        state.messages.removeAll(keepingCapacity: true)
                        state.bytes = 0
                    }
                    return .some(state.messages)
                }
                return state.outcome == nil ? nil : .some(nil)
            }
            if let taken {
                if taken != nil { lot.unparkAll() }  // room for catch-up pumps
                return taken
            }
            if Task.isCancelled { return nil }
            await lot.park(after: version)
        }
    }

    /// Ends the queue; the first outcome wins. A failure drops what is pending.
    func finish(_ outcome: Outcome) {
        state.withLock { state in
            guard state.outcome == nil else { return }
            state.outcome = outcome
            if outcome != .complete {
                state.messages.removeAll()
                state.bytes = 0
            }
        }
        lot.unparkAll()
    }

    /// Waits until the queue has ended and returns how.
    func ended() async -> Outcome? {
        while true {
            let version = lot.version
            if let outcome = state.withLock({ $0.outcome }) { return outcome }
            if Task.isCancelled { return nil }
            await lot.park(after: version)
        }
    }

    /// Starts a new stream of `job`: drops its queued messages and returns the generation its
    /// pushes must carry.
    func restart(_ job: JobID) -> UInt64 {
        let generation = state.withLock { state -> UInt64 in
            let next = (state.generations[job] ?? 0) &+ 1
            state.generations[job] = next
            state.purge(job)
            return next
        }
        lot.unparkAll()
        return generation
    }

    /// Stops `job`'s stream: drops its queued messages and ignores its late pushes.
    func stop(_ job: JobID) {
        state.withLock { state in
            state.generations[job] = nil
            state.purge(job)
        }
        lot.unparkAll()
    }
}

extension OutboundQueue.State {
    /// Appends unless `bounded` and the queue (already non-empty) would pass a limit.
    mutating func append(_ batch: [StreamMessage], bounded: Bool, maxMessages: Int, maxBytes: Int) -> Bool {
        let size = batch.reduce(0) { $0 + $1.byteCount }
        if bounded, !messages.isEmpty, messages.count + batch.count > maxMessages || bytes + size > maxBytes {
            return false
        }
        messages.append(contentsOf: batch)
        bytes += size
        return true
    }

    mutating func purge(_ job: JobID) {
        messages.removeAll { $0.jobID == job && $0.kind != .reply }
        bytes = messages.reduce(0) { $0 + $1.byteCount }
    }
}
