import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fresh, empty directory under `/tmp`, unique to its creator, for files a test writes.
public struct TemporaryDirectory: Sendable {
    /// The directory's absolute path.
    public let path: String

    /// Creates `/tmp/<prefix>XXXXXX`.
    /// - Throws: `TemporaryDirectoryError` when `mkdtemp` fails.
    public init(prefix: String = "jobserver-test-") throws {
        var template = Array("/tmp/\(prefix)XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { buffer -> String? in
            guard let base = buffer.baseAddress, mkdtemp(base) != nil else { return nil }
            return String(cString: base)
        }
        guard let created else { throw TemporaryDirectoryError(errno: errno) }
        path = created
    }

    /// `name` inside the directory.
    public func appending(_ name: String) -> String {
        path + "/" + name
    }

    /// Deletes the directory and everything in it; errors are ignored (it is scratch space).
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// `mkdtemp` failed.
public struct TemporaryDirectoryError: Error, Sendable, CustomStringConvertible {
    public var errno: Int32
    public var description: String { "cannot create a temporary directory: errno \(errno)" }
}

/// Runs `body` with the path of a fresh temporary directory, removed afterwards whether
/// `body` throws or not.
public func withTemporaryDirectory<T>(
    prefix: String = "jobserver-test-",
    isolation: isolated (any Actor)? = #isolation,
    _ body: (String) async throws -> T
) async throws -> T {
    let directory = try TemporaryDirectory(prefix: prefix)
    defer { directory.remove() }
    return try await body(directory.path)
}
