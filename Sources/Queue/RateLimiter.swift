import Foundation

/// A sustained rate: `count` units per `period` (`60/min`).
public struct RatePolicy: Sendable, Hashable, Codable, CustomStringConvertible {
    /// Units allowed per period; at least 1.
    public var count: Int
    /// The period, in whole milliseconds; at least 1.
    public var periodMillis: Int64

    public init(count: Int, periodMillis: Int64) {
        self.count = max(1, count)
        self.periodMillis = max(1, periodMillis)
    }

    /// `count` per second, minute, hour or day.
    public static func perSecond(_ count: Int) -> RatePolicy { RatePolicy(count: count, periodMillis: 1000) }
    public static func perMinute(_ count: Int) -> RatePolicy { RatePolicy(count: count, periodMillis: 60_000) }

    /// Parses `N/s`, `N/sec`, `N/min`, `N/m`, `N/h`, `N/hour`, `N/d`, `N/day` (also `N/5min`).
    public init?(parsing text: String) {
        let parts = text.lowercased().split(separator: "/", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, let count = Int(parts[0]), count >= 1, count <= 1_000_000_000 else { return nil }
        var unit = Substring(parts[1])
        let digits = unit.prefix { $0.isNumber }
        let multiple = digits.isEmpty ? 1 : Int64(digits) ?? 0
        unit = unit.dropFirst(digits.count)
        let unitMillis: Int64
        switch unit {
        case "ms": unitMillis = 1
        case "s", "sec", "second": unitMillis = 1000
        case "m", "min", "minute": unitMillis = 60_000
        case "h", "hour": unitMillis = 3_600_000
        case "d", "day": unitMillis = 86_400_000
        default: return nil
        }
        guard multiple >= 1, multiple <= 1_000_000 else { return nil }
        self.init(count: count, periodMillis: multiple * unitMillis)
    }

    /// Microseconds between two units at this rate (GCRA's emission interval), at least 1.
    public var emissionIntervalMicros: Int64 {
        max(1, periodMillis * 1000 / Int64(count))
    }

    public var description: String {
        let units: [(Int64, String)] = [(86_400_000, "day"), (3_600_000, "hour"), (60_000, "min"), (1000, "s")]
        for (millis, name) in units where periodMillis % millis == 0 {
            let multiple = periodMillis / millis
            return multiple == 1 ? "\(count)/\(name)" : "\(count)/\(multiple)\(name)"
        }
        return "\(count)/\(periodMillis)ms"
    }
}

/// What a rate limiter tells a client about its quota: the IETF `RateLimit-Policy` and
/// `RateLimit` fields are rendered from it.
public struct RateLimitStatus: Sendable, Hashable {
    /// Units a full bucket holds (the burst): the policy's quota `q`.
    public var quota: Int
    /// Seconds a completely drained bucket takes to refill: the policy's window `w`.
    public var windowSeconds: Int
    /// Units that may be spent right now (`r`).
    public var remaining: Int
    /// Seconds until the bucket is full again (`t`); 0 when it is full.
    public var resetSeconds: Int

    public init(quota: Int, windowSeconds: Int, remaining: Int, resetSeconds: Int) {
        self.quota = quota
        self.windowSeconds = windowSeconds
        self.remaining = remaining
        self.resetSeconds = resetSeconds
    }
}

/// The generic cell rate algorithm (GCRA), as a pure function of its one piece of state.
///
/// GCRA is a token bucket expressed as a single timestamp, the *theoretical arrival time*
/// (TAT): the instant at which the bucket would be full again. A request of `cost` units
/// pushes the TAT `cost` emission intervals into the future; it is allowed when the TAT does
/// not end up further ahead of now than the bucket's capacity (`burst` intervals). So a client
/// may spend `burst` units at once, then `count` per `period` sustained. A refused request
/// leaves the state untouched, which is what makes a burst from many servers let exactly the
/// allowed number through when the state is read and written in one transaction.
///
/// Times are integer microseconds (any epoch, as long as it is the same for `tat` and `now`).
public struct GCRA: Sendable, Hashable {
    public let policy: RatePolicy
    /// Units the bucket holds; at least 1.
    public let burst: Int

    public init(policy: RatePolicy, burst: Int) {
        self.policy = policy
        self.burst = max(1, burst)
    }

    /// The outcome of asking for `cost` units.
    public struct Decision: Sendable, Hashable {
        public var allowed: Bool
        /// The state to store: the new TAT when allowed, the old one when refused.
        public var tat: Int64
        /// When refused: microseconds until the same request would be allowed.
        public var retryAfterMicros: Int64
        /// The client-facing view after the decision.
        public var status: RateLimitStatus
    }

    var interval: Int64 { policy.emissionIntervalMicros }
    var capacity: Int64 { interval * Int64(burst) }

    /// Asks for `cost` units at `now`. A cost above the burst is charged as the burst, so a
    /// job kind that costs more than the bucket holds is still possible, just never in a burst.
    public func decide(tat stored: Int64?, now: Int64, cost: Int = 1) -> Decision {
        let units = Int64(min(max(cost, 0), burst))
        let base = max(stored ?? now, now)
        let next = base + units * interval
        if next - now <= capacity {
            return Decision(allowed: true, tat: next, retryAfterMicros: 0, status: status(tat: next, now: now))
        }
        return Decision(allowed: false, tat: base, retryAfterMicros: next - now - capacity, status: status(tat: base, now: now))
    }

    /// The client-facing view of the state without spending anything.
    public func status(tat stored: Int64?, now: Int64) -> RateLimitStatus {
        let ahead = max(0, (stored ?? now) - now)
        let remaining = Int((capacity - ahead) / interval)
        return RateLimitStatus(
            quota: burst, windowSeconds: Self.wholeSeconds(capacity), remaining: max(0, remaining),
            resetSeconds: Self.wholeSeconds(ahead))
    }

    /// Microseconds rounded up to whole seconds (a client that waits that long is never early).
    public static func wholeSeconds(_ micros: Int64) -> Int {
        Int((max(0, micros) + 999_999) / 1_000_000)
    }
}
