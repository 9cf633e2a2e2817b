import Foundation
import Queue
import Synchronization

/// A `StoreClock` that only moves when a test moves it, so lease expiry, delays and backoff
/// are tested without sleeping.
///
/// Starts at a whole second so stored (millisecond) timestamps equal the ones a test computes.
public final class ManualClock: StoreClock {
    private let current: Mutex<Date>

    public init(start: Date = Date(timeIntervalSince1970: 1_750_000_000)) {
        current = Mutex(start)
    }

    public func now() -> Date {
        current.withLock { $0 }
    }

    /// Moves time forward (or backward, for a negative duration).
    public func advance(by duration: Duration) {
        current.withLock { $0 = $0.adding(duration) }
    }

    /// Jumps to an instant.
    public func set(_ date: Date) {
        current.withLock { $0 = date }
    }
}
