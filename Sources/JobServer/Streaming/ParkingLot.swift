import Synchronization

/// Where tasks wait for "something changed" in a structure guarded by another lock.
///
/// The protocol avoids lost wake-ups without holding two locks: read `version` *before*
/// looking at the guarded state; if there is nothing to do, `park(after:)` that version. Every
/// change calls `unparkAll()` after its own lock is released, which moves the version, so a
/// change between the look and the park makes `park` return at once. Parking is cancellable.
final class ParkingLot: Sendable {
    private struct State {
        var version: UInt64 = 0
        var nextID: UInt64 = 0
        var parked: [UInt64: CheckedContinuation<Void, Never>] = [:]
    }

    private let state = Mutex(State())

    init() {}

    var version: UInt64 { state.withLock { $0.version } }

    /// Returns once the version has moved past `seen`, or the calling task is cancelled.
    func park(after seen: UInt64) async {
        let id = state.withLock { state in
            state.nextID += 1
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let ready = state.withLock { state in
                    // Checked under the lock `onCancel` takes: a cancellation is seen here or
                    // finds the continuation parked, never neither.
                    if state.version != seen || Task.isCancelled { return true }
                    state.parked[id] = continuation
                    return false
                }
                if ready { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.parked.removeValue(forKey: id) }?.resume()
        }
    }

    /// Moves the version and resumes every parked task.
    func unparkAll() {
        let parked = state.withLock { state in
            state.version &+= 1
            defer { state.parked.removeAll() }
            return Array(state.parked.values)
        }
        for continuation in parked { continuation.resume() }
    }
}
