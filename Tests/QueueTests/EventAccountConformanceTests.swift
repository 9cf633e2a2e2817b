import Foundation
import Queue
import TestSupport
import Testing

@Suite("Store conformance: event logs and accounts")
struct EventAccountConformanceTests {
    @Test(arguments: StoreEngine.all)
    func eventsAreDenseFromOneAndPageable(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            let batch = (1...3).map { NewEvent(type: "output", data: #"{"line":\#($0)}"#) }
            #expect(try await store.appendEvents(job.id, owner: "w1", batch) == 3)
            clock.advance(by: .seconds(1))
            #expect(try await store.appendEvents(job.id, owner: "w1", [
                NewEvent(type: "output", data: #"{"line":4}"#), NewEvent(type: "status", data: #"{"s":"x"}"#),
            ]) == 5)
            #expect(try await store.appendEvents(job.id, owner: "w1", []) == 5)

            let all = try await store.events(of: job.id, after: 0, limit: 100)
            #expect(all.map(\.seq) == [1, 2, 3, 4, 5])
            #expect(all[0].data == #"{"line":1}"#)
            #expect(all[4].type == "status")
            #expect(all[4].time == clock.now())
            #expect(try await store.events(of: job.id, after: 2, limit: 2).map(\.seq) == [3, 4])
            #expect(try await store.events(of: job.id, after: 5, limit: 10).isEmpty)
            #expect(try await store.job(job.id, userID: nil)?.lastEventSeq == 5)

            await #expect(throws: StoreError.leaseLost(job.id)) {
                try await store.appendEvents(job.id, owner: "intruder", [NewEvent(type: "output", data: "{}")])
            }
            try await store.complete(job.id, owner: "w1", with: .succeeded(result: nil, metrics: nil))
            await #expect(throws: StoreError.leaseLost(job.id)) {
                try await store.appendEvents(job.id, owner: "w1", [NewEvent(type: "output", data: "{}")])
            }
            // The log outlives the job.
            #expect(try await store.events(of: job.id, after: 0, limit: 100).count == 5)
        }
    }

    /// The cap admits a prefix of a batch, counts type and data bytes across batches and
    /// attempts, and leaves the log dense and readable.
    @Test(arguments: StoreEngine.all)
    func eventLogIsCappedByBytesAsADensePrefix(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let job = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            let ten = NewEvent(type: "t", data: "123456789")  // 10 bytes
            #expect(ten.byteCount == 10)
            let first = try await store.appendEvents(job.id, owner: "w1", [ten, ten], byteLimit: 35)
            #expect(first == EventAppend(lastSeq: 2, logBytes: 20, refused: 0))
            // 15 bytes left: the first event fits, the big second one does not, and the small
            // third one is refused too (a prefix only, never a subset out of order).
            let big = NewEvent(type: "t", data: String(repeating: "x", count: 20))
            let second = try await store.appendEvents(job.id, owner: "w1", [ten, big, NewEvent(type: "t", data: "1")], byteLimit: 35)
            #expect(second == EventAppend(lastSeq: 3, logBytes: 30, refused: 2))
            let full = try await store.appendEvents(job.id, owner: "w1", [ten], byteLimit: 35)
            #expect(full == EventAppend(lastSeq: 3, logBytes: 30, refused: 1))
            #expect(try await store.events(of: job.id, after: 0, limit: 10).map(\.seq) == [1, 2, 3])
            #expect(try await store.job(job.id, userID: nil)?.lastEventSeq == 3)
            // Without a limit the unlimited form keeps working on the same log.
            #expect(try await store.appendEvents(job.id, owner: "w1", [ten]) == 4)
        }
    }

    @Test(arguments: StoreEngine.all)
    func eventLogsAreSeparatePerJob(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let first = try await store.submitNew(newJob())
            let second = try await store.submitNew(newJob())
            _ = try await store.claimRequired("w1")
            _ = try await store.claimRequired("w2")
            #expect(try await store.appendEvents(first.id, owner: "w1", [NewEvent(type: "a", data: "1")]) == 1)
            #expect(try await store.appendEvents(second.id, owner: "w2", [NewEvent(type: "b", data: "2")]) == 1)
            #expect(try await store.events(of: second.id, after: 0, limit: 10).map(\.type) == ["b"])
        }
    }

    @Test(arguments: StoreEngine.all)
    func usersHaveUniqueNames(engine: StoreEngine) async throws {
        try await withStore(engine) { store, _ in
            let ada = try await store.createUser(name: "ada")
            let grace = try await store.createUser(name: "grace")
            await #expect(throws: StoreError.duplicate("user ada")) { try await store.createUser(name: "ada") }
            #expect(try await store.user(named: "ada") == ada)
            #expect(try await store.user(named: "nobody") == nil)
            #expect(Set(try await store.users()) == [ada, grace])
        }
    }

    @Test(arguments: StoreEngine.all)
    func tokensAreFoundByHashUntilRevoked(engine: StoreEngine) async throws {
        try await withStore(engine) { store, clock in
            let ada = try await store.createUser(name: "ada")
            let token = APIToken(id: "tok_1", userID: ada.id, label: "laptop", createdAt: clock.now())
            try await store.addToken(token, secretHash: "hash-1")
            try await store.addToken(
                APIToken(id: "tok_2", userID: ada.id, label: "ci", createdAt: clock.now()), secretHash: "hash-2")
            await #expect(throws: StoreError.self) {
                try await store.addToken(
                    APIToken(id: "tok_3", userID: ada.id, label: "dup", createdAt: clock.now()), secretHash: "hash-1")
            }
            await #expect(throws: StoreError.self) {
                try await store.addToken(
                    APIToken(id: "tok_4", userID: UserID(rawValue: "usr_ghost"), label: "x", createdAt: clock.now()),
                    secretHash: "hash-4")
            }
            #expect(try await store.user(forTokenHash: "hash-1") == ada)
            #expect(try await store.user(forTokenHash: "nope") == nil)
            #expect(try await store.tokens(of: ada.id).map(\.id) == ["tok_1", "tok_2"])

            clock.advance(by: .seconds(5))
            #expect(try await store.revokeToken(id: "tok_1"))
            #expect(try await store.revokeToken(id: "tok_1") == false)
            #expect(try await store.revokeToken(id: "tok_unknown") == false)
            #expect(try await store.user(forTokenHash: "hash-1") == nil)
            #expect(try await store.user(forTokenHash: "hash-2") == ada)
            let revoked = try #require(try await store.tokens(of: ada.id).first { $0.id == "tok_1" })
            #expect(revoked.revokedAt == clock.now())
            #expect(revoked.label == "laptop")
        }
    }
}
