import Queue
import Synchronization

/// The event pumps of one connection: at most one per job, each stoppable on its own (a
/// rewind, an unsubscribe), all of them child tasks of the connection's task group, so none
/// outlives the connection.
final class PumpGroup: Sendable {
    /// Runs one job's pump from a position with the generation its pushes carry.
    typealias Pump = @Sendable (_ job: JobID, _ after: Int64, _ generation: UInt64) async -> Void

    private struct Start: Sendable {
        var job: JobID
        var after: Int64
        var generation: UInt64
        var stop: StopSignal
    }

    private let queue: OutboundQueue
    private let starts: AsyncStream<Start>
    private let startContinuation: AsyncStream<Start>.Continuation
    private let running = Mutex<[JobID: StopSignal]>([:])

    init(queue: OutboundQueue) {
        self.queue = queue
        (starts, startContinuation) = AsyncStream.makeStream(of: Start.self)
    }

    /// Jobs with a pump right now.
    var jobs: Set<JobID> { running.withLock { Set($0.keys) } }

    /// (Re)starts `job`'s stream after `after`: stops its current pump, drops its queued
    /// messages, queues `announce` (which therefore precedes every new event), then starts a
    /// new pump.
    func start(_ job: JobID, after: Int64, announce: StreamMessage? = nil) {
        let stop = StopSignal()
        let generation = queue.restart(job)
        running.withLock { $0.updateValue(stop, forKey: job) }?.fire()
        if let announce { _ = queue.reply(announce) }
        startContinuation.yield(Start(job: job, after: after, generation: generation, stop: stop))
    }

    /// Stops `job`'s stream and drops its queued messages.
    func stop(_ job: JobID) {
        running.withLock { $0.removeValue(forKey: job) }?.fire()
        queue.stop(job)
    }

    /// Runs pumps as they are started, until the calling task is cancelled.
    func run(_ pump: @escaping Pump) async {
        await withDiscardingTaskGroup { group in
            for await start in starts {
                group.addTask {
                    await withTaskGroup(of: Void.self) { race in
                        race.addTask { await pump(start.job, start.after, start.generation) }
                        race.addTask { await start.stop.wait() }
                        await race.next()
                        race.cancelAll()
                    }
                    self.running.withLock { running in
                        if running[start.job] === start.stop { running[start.job] = nil }
                    }
                }
            }
        }
    }
}

/// A one-shot signal that stops one pump.
final class StopSignal: Sendable {
    private let fired = Mutex(false)
    private let lot = ParkingLot()

    func fire() {
        fired.withLock { $0 = true }
        lot.unparkAll()
    }

    /// Returns once fired, or when the task is cancelled.
    func wait() async {
        while !Task.isCancelled {
            let version = lot.version
            if fired.withLock({ $0 }) { return }
            await lot.park(after: version)
        }
    }
}
