import Foundation
import TestSupport
import Testing
@testable import Queue

/// The writer connection really commits with the `synchronous` setting asked for: GRDB resets
/// it when it turns WAL on, so a setting applied too early would silently be NORMAL.
@Suite struct SQLiteOptionsTests {
    @Test(arguments: [(SQLiteOptions.Synchronous.normal, 1), (.full, 2)])
    func writerUsesTheRequestedSynchronousSetting(_ synchronous: SQLiteOptions.Synchronous, pragma: Int) async throws {
        try await withTemporaryDirectory { directory in
            let database = try SQLiteDatabase(path: directory + "/store.db", options: SQLiteOptions(synchronous: synchronous))
            #expect(try await database.synchronousSetting() == pragma)
            // Reopening an existing file (no migration to run) applies it too.
            let again = try SQLiteDatabase(path: directory + "/store.db", options: SQLiteOptions(synchronous: synchronous))
            #expect(try await again.synchronousSetting() == pragma)
        }
    }
}
