import Foundation
import Queue

/// The service's data directory (`JOBSERVER_DATA`, default `./data`) and what lives in it:
/// the SQLite store, the users' workspaces and the workers' per-job run directories.
public struct DataDirectory: Sendable, Hashable {
    public var path: String

    public init(path: String) {
        self.path = URL(fileURLWithPath: path).standardizedFileURL.path
    }

    /// `JOBSERVER_DATA` or `./data`.
    public static func fromEnvironment(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> DataDirectory {
        DataDirectory(path: environment["JOBSERVER_DATA"].flatMap { $0.isEmpty ? nil : $0 } ?? "./data")
    }

    public var storeFile: String { path + "/jobs.sqlite3" }
    public var workspaces: String { path + "/workspaces" }
    public var runs: String { path + "/runs" }

    /// Creates the directory tree; private to the service's user.
    public func create() throws {
        for directory in [path, workspaces, runs] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
    }

    /// Opens the store named by `JOBSERVER_STORE`, or the SQLite file in this directory. The
    /// service's built-in limits are `UserLimits.standard` (below the store-wide defaults).
    ///
    /// `JOBSERVER_SQLITE_SYNCHRONOUS` (`normal`, the default, or `full`) chooses what a commit
    /// survives: `normal` survives `kill -9` of any process, `full` also a power loss, at the
    /// price of an fsync per commit (one per group-committed batch of submissions).
    public func openStore(
        url: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> SQLiteJobStore {
        try create()
        var options = SQLiteOptions()
        if let value = environment["JOBSERVER_SQLITE_SYNCHRONOUS"], !value.isEmpty {
            guard let synchronous = SQLiteOptions.Synchronous(rawValue: value.uppercased()) else {
                throw StoreError.unavailable("JOBSERVER_SQLITE_SYNCHRONOUS must be 'normal' or 'full', not '\(value)'")
            }
            options.synchronous = synchronous
        }
        if let url, !url.isEmpty {
            if url.hasPrefix("sqlite://") || url.hasPrefix("file:") || url.hasPrefix("/") {
                let file = url.replacingOccurrences(of: "sqlite://", with: "").replacingOccurrences(of: "file:", with: "")
                return try SQLiteJobStore(path: file, options: options, limits: .standard)
            }
            throw StoreError.unavailable("unsupported JOBSERVER_STORE '\(url)': only SQLite files are supported so far")
        }
        return try SQLiteJobStore(path: storeFile, options: options, limits: .standard)
    }
}
