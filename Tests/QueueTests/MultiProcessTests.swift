import Foundation
import Queue
import TestSupport
import Testing

/// The SQLite engine shared by several OS processes (`store-probe`), as in production where
/// several server and worker processes open the same file.
@Suite("SQLite store across processes", .serialized)
struct MultiProcessTests {
    @Test
    func fourClaimersTakeEachJobExactlyOnce() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/store.db"
            let store = try SQLiteJobStore(path: path)
            var submitted = Set<JobID>()
            for index in 0..<400 {
                let job = try await store.submit(NewJob(
                    userID: UserID(rawValue: "usr_probe"), kind: "probe", project: "p",
                    payload: .object(["index": .number(Double(index))])))
                submitted.insert(job.job.id)
            }
            let started = ContinuousClock.now
            let results = try await ProbeRunner.run(
                (1...4).map { ["claim", path, "owner-\($0)", "0", "1500"] }, scratch: directory)
            let elapsed = ContinuousClock.now - started
            for result in results {
                #expect(result.status == 0, "\(result.arguments) exited \(result.status): \(result.errors)")
                #expect(result.errors.isEmpty, "\(result.arguments): \(result.errors)")
            }
            let claimedBy = try claims(results, ownerArgument: 2)
            #expect(claimedBy.count == 400)
            #expect(Set(claimedBy.keys) == submitted)
            #expect(results.allSatisfy { !$0.lines.isEmpty }, "some claimer got no job: \(results.map(\.lines.count))")

            let jobs = try await allJobs(store, user: "usr_probe")
            #expect(jobs.count == 400)
            for job in jobs {
                #expect(job.status == .succeeded)
                #expect(job.attempt == 1)
                #expect(job.result?["by"]?.stringValue == claimedBy[job.id])
            }
            let firstStart = jobs.compactMap(\.startedAt).min() ?? Date()
            let lastFinish = jobs.compactMap(\.finishedAt).max() ?? Date()
            let busy = lastFinish.timeIntervalSince(firstStart)
            print("""
                multi-process claim→complete: 400 jobs, 4 processes, \(results.map(\.lines.count)) each, \
                \(String(format: "%.0f", 400 / max(busy, 0.001))) jobs/s over \(String(format: "%.3f", busy)) s \
                (wall \(elapsed) incl. start-up and 1.5 s idle exit)
                """)
        }
    }

    @Test
    func concurrentSubmittersAndClaimersLoseNothing() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/store.db"
            let store = try SQLiteJobStore(path: path)
            let submitters = (1...3).map { ["submit", path, "usr_contention", "\($0 == 1 ? 200 : 150)"] }
            let claimers = (1...3).map { ["claim", path, "claimer-\($0)", "0", "3000"] }
            let results = try await ProbeRunner.run(submitters + claimers, scratch: directory)
            for result in results {
                #expect(result.status == 0, "\(result.arguments) exited \(result.status): \(result.errors)")
                #expect(result.errors.isEmpty, "\(result.arguments): \(result.errors)")
            }
            let submittedLines = results.prefix(3).flatMap(\.lines)
            #expect(submittedLines.count == 500)
            let submitted = Set(submittedLines.compactMap(JobID.init(rawValue:)))
            #expect(submitted.count == 500)
            let claimedBy = try claims(Array(results.suffix(3)), ownerArgument: 2)
            #expect(Set(claimedBy.keys) == submitted)

            let jobs = try await allJobs(store, user: "usr_contention")
            #expect(jobs.count == 500)
            #expect(jobs.allSatisfy { $0.status == .succeeded && $0.attempt == 1 })
            let stats = try await store.stats()
            #expect(stats.counts[.queued] == 0)
            #expect(stats.counts[.running] == 0)
        }
    }

    @Test
    func simultaneousFirstOpensMigrateOnce() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/fresh.db"
            let results = try await ProbeRunner.run(
                (1...4).map { _ in ["submit", path, "usr_first", "3"] }, scratch: directory)
            for result in results {
                #expect(result.status == 0, "\(result.arguments) exited \(result.status): \(result.errors)")
                #expect(result.errors.isEmpty, "\(result.arguments): \(result.errors)")
                #expect(result.lines.count == 3)
            }
            let store = try SQLiteJobStore(path: path)
            #expect(try await allJobs(store, user: "usr_first").count == 12)
        }
    }

    /// Job id → the owner that printed it; records an issue for any id printed twice.
    private func claims(_ results: [ProbeResult], ownerArgument: Int) throws -> [JobID: String] {
        var claimedBy: [JobID: String] = [:]
        for result in results {
            for line in result.lines {
                let id = try #require(JobID(rawValue: line), "not a job id: \(line)")
                if let earlier = claimedBy[id] {
                    Issue.record("\(id) claimed by both \(earlier) and \(result.arguments[ownerArgument])")
                }
                claimedBy[id] = result.arguments[ownerArgument]
            }
        }
        return claimedBy
    }

    private func allJobs(_ store: some JobStore, user: String) async throws -> [JobRecord] {
        var all: [JobRecord] = []
        var cursor: JobID?
        while true {
            let page = try await store.jobs(userID: UserID(rawValue: user), filter: JobFilter(), after: cursor, limit: 200)
            all += page
            guard page.count == 200 else { return all }
            cursor = page.last?.id
        }
    }
}
