import Synchronization

/// A value shared between concurrent tasks, guarded by a `Mutex`.
///
/// `Mutex` is non-copyable and cannot be captured by the escaping closures of task groups;
/// this reference wrapper can.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) {
        mutex = Mutex(value)
    }

    public func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        try mutex.withLock { try body(&$0) }
    }

    public var value: Value { mutex.withLock { $0 } }
}
