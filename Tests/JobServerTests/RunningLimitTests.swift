import Foundation
import Queue
import Testing
import TestSupport

/// `max_running` and fairness with real worker processes running the real CLI: the claim query
/// skips users at their cap (no spinning: idle slots wait on the change feed) and hands a free
/// slot to the user with fewer running jobs.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct RunningLimitTests {
    static func submit(_ harness: ServiceHarness, _ token: String, script: String, _ n: Int) async throws -> String {
        let reply = try await harness.request("POST", "/v1/jobs", token: token, json: [
            "type": "generate", "project": "p\(n % 3)", "prompt": .string("job \(n) \(ModelScript.marker(script))"),
        ])
        try #require(reply.status == 202, "submit answered \(reply.status): \(reply.text)")
        return try #require(reply.json?["id"]?.stringValue)
    }

    /// A job's running interval as the store recorded it.
    static func interval(_ job: JSONValue) throws -> (start: Date, end: Date) {
        let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
        let start = try style.parse(try #require(job["started_at"]?.stringValue))
        let end = try style.parse(try #require(job["finished_at"]?.stringValue))
        return (start, end)
    }

    /// The most intervals that overlap at any instant (an end at the same instant as a start
    /// does not overlap it).
    static func maxOverlap(_ intervals: [(start: Date, end: Date)]) -> Int {
        let edges = intervals.flatMap { [($0.start, 1), ($0.end, -1)] }.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        var running = 0
        var most = 0
        for (_, delta) in edges {
            running += delta
            most = max(most, running)
        }
        return most
    }

    @Test func maxRunningHoldsAcrossSeveralWorkerProcesses() async throws {
        try await withScriptedModelServer { model in
            model.register([ModelTurn.text("done").delay(.milliseconds(400))], as: "short")
            try await withServiceHarness(model: model) { harness in
                let alice = try await harness.createUser("alice")
                try await harness.admin(["user", "limits", "alice", "--max-running", "2"])
                try await harness.startServer()
                // Three worker processes with two slots each: six slots for a cap of two.
                for _ in 0..<3 { try harness.startWorker(concurrency: 2) }
                var ids: [String] = []
                for n in 0..<8 { ids.append(try await Self.submit(harness, alice, script: "short", n)) }
                var intervals: [(start: Date, end: Date)] = []
                for id in ids {
                    let job = try await harness.waitForJob(id, token: alice)
                    #expect(job["status"]?.stringValue == "succeeded", "\(job)")
                    intervals.append(try Self.interval(job))
                }
                #expect(Self.maxOverlap(intervals) == 2, "running at once: \(Self.maxOverlap(intervals))")
            }
        }
    }

    @Test func aUserWithAHundredQueuedJobsDoesNotBlockAnothersSingleJob() async throws {
        try await withScriptedModelServer { model in
            model.register([ModelTurn.text("slow").delay(.seconds(1))], as: "slow")
            try await withServiceHarness(model: model) { harness in
                let alice = try await harness.createUser("alice")
                let bob = try await harness.createUser("bob")
                // Alice may fill every slot and queue as much as she likes.
                try await harness.admin(["user", "limits", "alice", "--rate", "none", "--max-running", "none", "--max-queued", "none"])
                try await harness.startServer()
                try harness.startWorker(concurrency: 2)
                var mine: [String] = []
                for n in 0..<100 { mine.append(try await Self.submit(harness, alice, script: "slow", n)) }
                try await harness.waitForStatus(mine[0], "running", token: alice)
                try await harness.waitForStatus(mine[1], "running", token: alice)
                let bobs = try await Self.submit(harness, bob, script: "slow", 0)
                let bobsJob = try await harness.waitForJob(bobs, token: bob, timeout: .seconds(20))
                #expect(bobsJob["status"]?.stringValue == "succeeded", "\(bobsJob)")
                let bobStart = try Self.interval(bobsJob).start
                // Plain FIFO would run Alice's 98 older jobs first. Bob's job takes the first
                // slot that frees: no job of Alice's starts between his submission and his start.
                // (Timestamps are taken under the store's write lock, so they follow commit order;
                // a claim in the same millisecond as the submission committed before it.)
                let submitted = try #require(bobsJob["created_at"]?.stringValue)
                let style = Date.ISO8601FormatStyle(includingFractionalSeconds: true)
                let bobSubmitted = try style.parse(submitted)
                var startedBetween: [String] = []
                for id in mine[2..<6] {
                    let job = try #require(try await harness.request("GET", "/v1/jobs/\(id)", token: alice).json)
                    guard let text = job["started_at"]?.stringValue else { continue }
                    let start = try style.parse(text)
                    if start > bobSubmitted, start < bobStart { startedBetween.append(id) }
                }
                #expect(startedBetween.isEmpty, "alice's \(startedBetween) started after bob submitted and before he started")
            }
        }
    }
}
