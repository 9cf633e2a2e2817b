/// Cross-process wake-ups for things that change in the store.
///
/// Workers wait on `.queue` instead of polling, so a submission starts within milliseconds;
/// running jobs wait on `.cancel`; stream subscribers wait on `.events`. A wait is keyed by a
/// generation read *before* the caller looked at the store, so a change committed between the
/// look and the wait is never missed.
public protocol ChangeFeed: Sendable {
    /// The current generation of a channel, to pass to `wait`.
    func generation(of channel: ChangeChannel) -> UInt64

    /// Returns once the channel's generation has moved past `generation`, or after `timeout`.
    /// Returns `true` when woken by a change.
    @discardableResult
    func wait(for channel: ChangeChannel, after generation: UInt64, timeout: Duration) async -> Bool

    /// Tells every process that the channel changed. Engines call this after their commit.
    func notify(_ channel: ChangeChannel)

    /// Notifies a channel that will not change again (a finished job's events) for the last
    /// time and releases what it holds, so finished jobs leave nothing behind.
    func retire(_ channel: ChangeChannel)
}

/// What a `ChangeFeed` wake-up is about.
public enum ChangeChannel: Sendable, Hashable {
    /// Jobs became claimable (submitted, requeued, released).
    case queue
    /// A cancellation was requested for a running job.
    case cancel
    /// A job's event log grew or the job ended.
    case events(JobID)
    /// Users or tokens changed (a token was revoked): caches of credentials must be dropped.
    case accounts
}
