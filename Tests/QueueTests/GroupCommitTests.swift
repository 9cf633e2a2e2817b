@testable import Queue
import Sandbox
import Testing

/// Group commit: concurrent requests share batches, each gets its own result, and a failed
/// batch fails exactly its own requests.
@Suite struct GroupCommitTests {
    struct Odd: Error {}
    struct Broken: Error {}

    @Test func concurrentRequestsShareBatchesAndKeepTheirOwnResults() async throws {
        let batches = Locked<[Int]>([])
        let commit = GroupCommit<Int, Int> { requests in
            batches.withLock { $0.append(requests.count) }
            try await Task.sleep(for: .milliseconds(2))  // a transaction takes time; others queue
            return requests.map { $0 % 2 == 0 ? .success($0 * 10) : .failure(Odd()) }
        }
        let results = await withTaskGroup(of: (Int, Int?).self) { group in
            for n in 0..<200 {
                group.addTask { (n, try? await commit.submit(n)) }
            }
            return await group.reduce(into: [Int: Int?]()) { $0[$1.0] = $1.1 }
        }
        #expect(results.count == 200)
        for (n, result) in results {
            #expect(result == (n % 2 == 0 ? n * 10 : nil), "request \(n)")
        }
        let sizes = batches.value
        #expect(sizes.reduce(0, +) == 200, "every request written exactly once")
        #expect(sizes.count < 200, "some requests shared a batch: \(sizes)")
    }

    @Test func aFailedTransactionFailsItsBatchOnlyAndLaterBatchesWork() async throws {
        let calls = Locked(0)
        let commit = GroupCommit<Int, Int> { requests in
            let call = calls.withLock { $0 += 1; return $0 }
            if call == 1 { throw Broken() }
            return requests.map { .success($0) }
        }
        await #expect(throws: Broken.self) { try await commit.submit(1) }
        #expect(try await commit.submit(2) == 2)
    }
}
