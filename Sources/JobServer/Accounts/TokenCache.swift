import Queue
import Sandbox

/// Remembers which user a token hash belongs to, so a request does not cost a store read.
///
/// Revocation must still take effect at once, across processes: the cache is dropped whenever
/// the store's `.accounts` channel moves (a revocation anywhere notifies it), and an entry lives
/// at most `lifetime` in case a notification was lost (a revoking process killed between its
/// commit and its notification). Unknown tokens are never cached, so a new token works at once.
final class TokenCache: Sendable {
    private struct State {
        var generation: UInt64
        var entries: [String: (user: User, expires: ContinuousClock.Instant)] = [:]
    }

    private let feed: any ChangeFeed
    private let lifetime: Duration
    private let capacity: Int
    private let state: Locked<State>

    init(feed: any ChangeFeed, lifetime: Duration = .seconds(30), capacity: Int = 10_000) {
        self.feed = feed
        self.lifetime = lifetime
        self.capacity = capacity
        self.state = Locked(State(generation: feed.generation(of: .accounts)))
    }

    /// The user for a token hash, from the cache or from `lookup`.
    func user(forHash hash: String, lookup: (String) async throws -> User?) async throws -> User? {
        let now = ContinuousClock.now
        let generation = feed.generation(of: .accounts)
        let cached = state.withLock { state -> User? in
            if state.generation != generation {
                state.generation = generation
                state.entries.removeAll()
            }
            guard let entry = state.entries[hash], entry.expires > now else { return nil }
            return entry.user
        }
        if let cached { return cached }
        guard let user = try await lookup(hash) else { return nil }
        state.withLock { state in
            // Only cache what was read under the current generation.
            guard state.generation == generation else { return }
            if state.entries.count >= capacity { state.entries.removeAll() }
            state.entries[hash] = (user, now + lifetime)
        }
        return user
    }
}
