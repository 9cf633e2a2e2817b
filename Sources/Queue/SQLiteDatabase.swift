import Foundation
import GRDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How a SQLite store file is opened.
public struct SQLiteOptions: Sendable, Hashable {
    /// SQLite's `synchronous` setting for the writer connection.
    ///
    /// In WAL mode `.normal` already survives `kill -9` of any process (the WAL is in the OS
    /// page cache); only a power loss or kernel crash can drop the last commits. `.full` also
    /// survives those at the cost of an fsync per commit.
    public enum Synchronous: String, Sendable, Hashable {
        case normal = "NORMAL"
        case full = "FULL"
    }

    /// Durability of each commit against power loss (see `Synchronous`); `.normal` by default.
    public var synchronous: Synchronous
    /// How long one statement waits for another process's lock before SQLite gives up.
    public var busyTimeout: Duration
    /// How long a write keeps retrying `SQLITE_BUSY`/`SQLITE_LOCKED` in total before
    /// `StoreError.busy` is thrown.
    public var busyRetryBound: Duration
    /// Concurrent reader connections in this process.
    public var maximumReaderCount: Int

    public init(
        synchronous: Synchronous = .normal, busyTimeout: Duration = .seconds(5),
        busyRetryBound: Duration = .seconds(30), maximumReaderCount: Int = 4
    ) {
        self.synchronous = synchronous
        self.busyTimeout = busyTimeout
        self.busyRetryBound = busyRetryBound
        self.maximumReaderCount = maximumReaderCount
    }
}

/// A SQLite database file in WAL mode, shared safely by many processes on one host.
///
/// Opening creates and migrates the file; the migration runs exactly once even when several
/// processes open a brand-new file at the same instant, because opening and migrating happen
/// under an exclusive `flock` on the sibling file `<path>.lock`. Writes run in `BEGIN IMMEDIATE`
/// transactions (so a transaction never has to upgrade a read lock and hit an unrecoverable
/// `SQLITE_BUSY`), wait on other processes' locks with a busy timeout, and are retried with
/// jittered backoff up to `SQLiteOptions.busyRetryBound` if SQLite still reports contention.
public final class SQLiteDatabase: Sendable {
    /// The database file.
    public let path: String
    /// How the file was opened.
    public let options: SQLiteOptions
    let pool: DatabasePool

    /// Opens (creating and migrating if needed) the database at `path`.
    /// - Throws: `StoreError.unavailable` when the file cannot be opened or migrated.
    public init(path: String, options: SQLiteOptions = SQLiteOptions()) throws {
        self.path = path
        self.options = options
        var config = Configuration()
        config.foreignKeysEnabled = true
        config.journalMode = .wal
        config.busyMode = .timeout(options.busyTimeout.timeInterval)
        config.maximumReaderCount = max(1, options.maximumReaderCount)
        config.label = "queue-store"
        let synchronous = options.synchronous
        do {
            self.pool = try FileLock.withExclusiveLock(path: path + ".lock") {
                let pool = try DatabasePool(path: path, configuration: config)
                // Per connection, and only the writer commits. Set after the pool is open:
                // GRDB switches a new pool's writer to NORMAL when it turns WAL on, after
                // `prepareDatabase` has run.
                try pool.writeWithoutTransaction { db in
                    try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue)")
                }
                try SQLiteSchema.migrator.migrate(pool)
                return pool
            }
        } catch let error as StoreError {
            throw error
        } catch let error as DatabaseError {
            throw StoreError.unavailable("opening \(path): \(error.message ?? error.description)")
        } catch {
            throw StoreError.unavailable("opening \(path): \(error)")
        }
    }

    /// The writer connection's `PRAGMA synchronous` as SQLite reports it (0 off, 1 normal, 2 full).
    public func synchronousSetting() async throws -> Int {
        try await pool.writeWithoutTransaction { db in try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1 }
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction, committed when it returns.
    ///
    /// `StoreError`s thrown by `body` roll the transaction back and pass through unchanged.
    /// Lock contention is retried (the whole transaction is replayed, so `body` must only have
    /// database side effects); other SQLite failures become `StoreError.unavailable`.
    func write<T: Sendable>(_ label: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await retryingBusy(label) {
            try await self.pool.write(body)
        }
    }

    /// Runs `body` on a read-only snapshot of the database.
    func read<T: Sendable>(_ label: String, _ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await retryingBusy(label) {
            try await self.pool.read(body)
        }
    }

    private func retryingBusy<T: Sendable>(_ label: String, _ operation: () async throws -> T) async throws -> T {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: options.busyRetryBound)
        var attempt = 0
        while true {
            do {
                return try await operation()
            } catch let error as StoreError {
                throw error
            } catch let error as DatabaseError {
                guard Self.isContention(error) else {
                    throw StoreError.unavailable("\(label): \(error.message ?? error.description)")
                }
                attempt += 1
                let ceiling = min(50, 1 << min(attempt, 6))
                let pause = Duration.milliseconds(Int.random(in: 1...ceiling))
                guard clock.now.advanced(by: pause) < deadline else {
                    throw StoreError.busy("\(label): still locked after \(attempt) attempts")
                }
                try await Task.sleep(for: pause)
            }
        }
    }

    /// `SQLITE_BUSY` (including `SQLITE_BUSY_SNAPSHOT`) and `SQLITE_LOCKED`: another
    /// connection holds a conflicting lock, so the same transaction can succeed later.
    static func isContention(_ error: DatabaseError) -> Bool {
        error.resultCode == .SQLITE_BUSY || error.resultCode == .SQLITE_LOCKED
    }
}

/// An exclusive advisory lock on a file, held across processes for the duration of a call.
enum FileLock {
    static func withExclusiveLock<T>(path: String, _ body: () throws -> T) throws -> T {
        let fd = try SystemCall.retrying("open(\(path))") {
            open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        }
        defer { _ = close(fd) }
        _ = try SystemCall.retrying("flock(LOCK_EX)") { flock(fd, LOCK_EX) }
        defer { _ = flock(fd, LOCK_UN) }
        return try body()
    }
}

extension Duration {
    /// The duration in seconds, for APIs that take a `TimeInterval`.
    var timeInterval: TimeInterval {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}
