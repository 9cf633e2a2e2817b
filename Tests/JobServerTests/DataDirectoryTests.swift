import Foundation
import Queue
import TestSupport
import Testing
@testable import JobServer

/// `JOBSERVER_SQLITE_SYNCHRONOUS` picks the store's commit durability; a value it does not know
/// stops the process with a clear message instead of silently using the default.
@Suite struct DataDirectoryTests {
    @Test(arguments: [("normal", 1), ("NORMAL", 1), ("full", 2), ("", 1)])
    func synchronousSettingFromTheEnvironment(_ value: String, pragma: Int) async throws {
        try await withTemporaryDirectory { directory in
            let store = try DataDirectory(path: directory).openStore(environment: ["JOBSERVER_SQLITE_SYNCHRONOUS": value])
            #expect(try await store.database.synchronousSetting() == pragma)
        }
    }

    @Test(arguments: ["off", "extra", "2", "fast"])
    func unknownSynchronousValuesAreRefused(_ value: String) async throws {
        try await withTemporaryDirectory { directory in
            #expect(throws: StoreError.self) {
                try DataDirectory(path: directory).openStore(environment: ["JOBSERVER_SQLITE_SYNCHRONOUS": value])
            }
        }
    }
}
