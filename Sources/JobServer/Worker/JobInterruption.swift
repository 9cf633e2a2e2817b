import Sandbox

/// Lets the worker take a running job back (shutdown past its grace period) without cancelling
/// the runner's task: the runner must still talk to the store to release the lease, and store
/// calls in a cancelled task are themselves cancelled.
final class JobInterruption: Sendable {
    /// The agent's process control; `release()` stops the agent through it.
    let control = ProcessControl()
    private let released = Locked(false)

    var isReleased: Bool { released.value }

    func release() {
        released.withLock { $0 = true }
        control.stop(.cancelled)
    }
}
