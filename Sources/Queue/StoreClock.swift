import Foundation

/// The source of "now" for leases, delays and timestamps.
///
/// Injected so lease expiry and backoff can be tested without sleeping; every process sharing
/// a store must use wall-clock time in production, since leases are compared across processes.
public protocol StoreClock: Sendable {
    func now() -> Date
}

/// Wall-clock time.
public struct SystemStoreClock: StoreClock {
    public init() {}
    public func now() -> Date { Date() }
}
