#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which one, and its `errno`.
public struct SystemCallError: Error, Sendable, Hashable, CustomStringConvertible {
    public var function: String
    public var errno: Int32

    public init(function: String, errno: Int32) {
        self.function = function
        self.errno = errno
    }

    public var description: String {
        "\(function) failed: \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Thin wrappers for POSIX calls: retry on `EINTR`, turn `-1` into a typed error.
enum SystemCall {
    /// Calls `body` until it does not fail with `EINTR`; a `-1` result throws `SystemCallError`.
    @inline(__always)
    static func retrying<T: FixedWidthInteger>(_ function: @autoclosure () -> String, _ body: () -> T) throws(SystemCallError) -> T {
        while true {
            let result = body()
            if result == -1 {
                let code = errno
                if code == EINTR { continue }
                throw SystemCallError(function: function(), errno: code)
            }
            return result
        }
    }

    /// Like `retrying`, but `EAGAIN`/`EWOULDBLOCK` return `nil` (non-blocking descriptors).
    @inline(__always)
    static func retryingUnlessWouldBlock<T: FixedWidthInteger>(_ function: @autoclosure () -> String, _ body: () -> T) throws(SystemCallError) -> T? {
        while true {
            let result = body()
            if result == -1 {
                let code = errno
                if code == EINTR { continue }
                if code == EAGAIN || code == EWOULDBLOCK { return nil }
                throw SystemCallError(function: function(), errno: code)
            }
            return result
        }
    }
}
