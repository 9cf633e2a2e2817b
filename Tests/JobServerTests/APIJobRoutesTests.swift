import Foundation
import HTTPTypes
import HummingbirdTesting
import JobServer
import NIOCore
import Queue
import TestSupport
import Testing

/// Reading, listing, cancelling jobs and paging their events through the real router.
extension APIValidationTests {
    // MARK: - Reading, isolation

    @Test func anotherUsersJobIsNotFound() async throws {
        try await withAPI { fixture, client in
            let id = try await client.submitJob(as: fixture.alice)
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/jobs/\(id)"), (.post, "/v1/jobs/\(id)/cancel"), (.get, "/v1/jobs/\(id)/events")] {
                let response = try await client.send(method, uri, as: fixture.bob)
                expectError(response, .notFound, .notFound)
                #expect(!response.text.contains(fixture.alice.user.name), "\(response)")
            }
            let list = try await client.send(.get, "/v1/jobs", as: fixture.bob)
            #expect(list.json?["jobs"] == .array([]))
            // Bob's cancel attempt did nothing.
            #expect(try await client.send(.get, "/v1/jobs/\(id)", as: fixture.alice).json?["status"] == .string("queued"))
        }
    }

    @Test func malformedJobIDsAreNotFound() async throws {
        try await withAPI { fixture, client in
            let ids = ["nope", "job_", "job_0000000000000000000000000U", "job_\(String(repeating: "0", count: 27))",
                       "JOB_01jd8q3x0v5k2m9n4p6r8s0t2w", "%00", "job_01jd8q3x0v5k2m9n4p6r8s0t2%77", "job_00000000000000000000000000"]
            for id in ids {
                expectError(try await client.send(.get, "/v1/jobs/\(id)", as: fixture.alice), .notFound, .notFound)
                expectError(try await client.send(.post, "/v1/jobs/\(id)/cancel", as: fixture.alice), .notFound, .notFound)
                expectError(try await client.send(.get, "/v1/jobs/\(id)/events", as: fixture.alice), .notFound, .notFound)
            }
        }
    }

    // MARK: - Listing

    @Test func listRejectsBadParameters() async throws {
        try await withAPI { fixture, client in
            let cases: [(String, String)] = [
                ("status=bogus", "status"), ("status=", "status"), ("type=deploy", "type"),
                ("limit=0", "limit"), ("limit=101", "limit"), ("limit=abc", "limit"), ("limit=", "limit"),
                ("limit=99999999999999999999999", "limit"), ("limit=-1", "limit"), ("limit=1.5", "limit"),
                ("cursor=zzz", "cursor"), ("cursor=", "cursor"),
            ]
            for (query, field) in cases {
                let response = try await client.send(.get, "/v1/jobs?\(query)", as: fixture.alice)
                expectError(response, .badRequest, .invalidRequest, field: field)
            }
            let project = try await client.send(.get, "/v1/jobs?project=.hidden", as: fixture.alice)
            expectError(project, .badRequest, .invalidRequest)
            #expect(project.errorDetails?["project"] == .string(".hidden"))
        }
    }

    @Test func listPagesWithCursor() async throws {
        try await withAPI { fixture, client in
            var submitted: [String] = []
            for index in 0..<5 {
                submitted.append(try await client.submitJob(as: fixture.alice, project: index % 2 == 0 ? "even" : "odd", prompt: "job \(index)"))
            }
            _ = try await client.submitJob(as: fixture.bob)

            var seen: [String] = []
            var cursor: String?
            var pages = 0
            repeat {
                let uri = "/v1/jobs?limit=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let response = try await client.send(.get, uri, as: fixture.alice)
                #expect(response.status == .ok, "\(response)")
                let jobs = try #require(response.json?["jobs"]?.arrayValue)
                #expect(jobs.count <= 2)
                seen += jobs.compactMap { $0["id"]?.stringValue }
                cursor = response.json?["next_cursor"]?.stringValue
                if cursor == nil { #expect(response.json?["next_cursor"] == .null) }
                pages += 1
            } while cursor != nil && pages < 10
            #expect(pages == 3)
            #expect(seen.count == 5)
            #expect(Set(seen) == Set(submitted))
            #expect(seen == seen.sorted(by: >), "newest first")

            let all = try await client.send(.get, "/v1/jobs", as: fixture.alice)
            #expect(all.json?["jobs"]?.arrayValue?.count == 5)
            #expect(all.json?["next_cursor"] == .null)

            let even = try await client.send(.get, "/v1/jobs?project=even", as: fixture.alice)
            #expect(even.json?["jobs"]?.arrayValue?.count == 3)
            let kinds = try await client.send(.get, "/v1/jobs?type=review", as: fixture.alice)
            #expect(kinds.json?["jobs"]?.arrayValue?.isEmpty == true)

            let cancelled = try await client.send(.post, "/v1/jobs/\(submitted[1])/cancel", as: fixture.alice)
            #expect(cancelled.status == .ok)
            let onlyCancelled = try await client.send(.get, "/v1/jobs?status=cancelled", as: fixture.alice)
            #expect(onlyCancelled.json?["jobs"]?.arrayValue?.compactMap { $0["id"]?.stringValue } == [submitted[1]])
            let queued = try await client.send(.get, "/v1/jobs?status=queued&limit=100", as: fixture.alice)
            #expect(queued.json?["jobs"]?.arrayValue?.count == 4)
        }
    }

    // MARK: - Cancelling

    @Test func cancellingAQueuedJobCancelsItAndIsRepeatable() async throws {
        try await withAPI { fixture, client in
            let id = try await client.submitJob(as: fixture.alice)
            let first = try await client.send(.post, "/v1/jobs/\(id)/cancel", as: fixture.alice)
            #expect(first.status == .ok, "\(first)")
            #expect(first.json?["status"] == .string("cancelled"))
            #expect(first.json?["error"]?["code"] == .string("E007"))
            #expect(first.json?["error"]?["name"] == .string("CANCELLED"))
            #expect(first.json?["error"]?["retryable"] == .bool(false))
            #expect(first.json?["finished_at"]?.stringValue != nil)

            let second = try await client.send(.post, "/v1/jobs/\(id)/cancel", as: fixture.alice)
            #expect(second.status == .ok, "\(second)")
            #expect(second.json?["status"] == .string("cancelled"))
            #expect(second.json?["finished_at"] == first.json?["finished_at"])

            let read = try await client.send(.get, "/v1/jobs/\(id)", as: fixture.alice)
            #expect(read.json?["status"] == .string("cancelled"))
            #expect(read.json?["queue_position"] == nil)
        }
    }

    @Test func cancellingRunningAndFinishedJobs() async throws {
        try await withAPI { fixture, client in
            let running = try await client.submitJob(as: fixture.alice, prompt: "running")
            let claimed = try #require(try await fixture.store.claim(owner: "worker-1", lease: .seconds(60)))
            #expect(claimed.id.rawValue == running)
            let flagged = try await client.send(.post, "/v1/jobs/\(running)/cancel", as: fixture.alice)
            #expect(flagged.status == .accepted, "\(flagged)")
            #expect(flagged.json?["status"] == .string("running"))
            #expect(flagged.json?["cancel_requested"] == .bool(true))

            let done = try await client.submitJob(as: fixture.alice, prompt: "done")
            let second = try #require(try await fixture.store.claim(owner: "worker-1", lease: .seconds(60)))
            #expect(second.id.rawValue == done)
            try await fixture.store.complete(second.id, owner: "worker-1", with: .succeeded(result: .object(["text": .string("ok")]), metrics: nil))
            let refused = try await client.send(.post, "/v1/jobs/\(done)/cancel", as: fixture.alice)
            expectError(refused, .conflict, .conflict)
            #expect(refused.errorDetails?["status"] == .string("succeeded"))
            let read = try await client.send(.get, "/v1/jobs/\(done)", as: fixture.alice)
            #expect(read.json?["status"] == .string("succeeded"))
            #expect(read.json?["result"]?["text"] == .string("ok"))
        }
    }

    // MARK: - Events

    @Test func eventsArePaged() async throws {
        try await withAPI { fixture, client in
            let id = try await client.submitJob(as: fixture.alice)
            let empty = try await client.send(.get, "/v1/jobs/\(id)/events", as: fixture.alice)
            #expect(empty.status == .ok, "\(empty)")
            #expect(empty.json?["job_id"] == .string(id))
            #expect(empty.json?["status"] == .string("queued"))
            #expect(empty.json?["events"] == .array([]))
            #expect(empty.json?["next_after"]?.intValue == 0)
            #expect(empty.json?["done"] == .bool(false))

            let job = try #require(try await fixture.store.claim(owner: "w", lease: .seconds(60)))
            let last = try await fixture.store.appendEvents(job.id, owner: "w", [
                NewEvent(type: "log", data: #"{"n":1}"#),
                NewEvent(type: "assistant", data: #"{"text":"hi \"there\""}"#),
                NewEvent(type: "log", data: #"[1,2,3]"#),
            ])
            #expect(last == 3)

            let page = try await client.send(.get, "/v1/jobs/\(id)/events", as: fixture.alice)
            let events = try #require(page.json?["events"]?.arrayValue)
            #expect(events.compactMap { $0["seq"]?.intValue } == [1, 2, 3])
            #expect(events.map { $0["type"] } == [.string("log"), .string("assistant"), .string("log")])
            #expect(events[0]["data"] == .object(["n": .number(1)]))
            #expect(events[1]["data"]?["text"] == .string("hi \"there\""))
            #expect(events.allSatisfy { $0["time"]?.stringValue != nil })
            #expect(page.json?["next_after"]?.intValue == 3)
            #expect(page.json?["status"] == .string("running"))
            #expect(page.json?["done"] == .bool(false))

            let limited = try await client.send(.get, "/v1/jobs/\(id)/events?limit=1", as: fixture.alice)
            #expect(limited.json?["events"]?.arrayValue?.count == 1)
            #expect(limited.json?["next_after"]?.intValue == 1)
            let after = try await client.send(.get, "/v1/jobs/\(id)/events?after=2", as: fixture.alice)
            #expect(after.json?["events"]?.arrayValue?.compactMap { $0["seq"]?.intValue } == [3])

            try await fixture.store.complete(job.id, owner: "w", with: .succeeded(result: nil, metrics: nil))
            let partial = try await client.send(.get, "/v1/jobs/\(id)/events?after=1&limit=1", as: fixture.alice)
            #expect(partial.json?["next_after"]?.intValue == 2)
            #expect(partial.json?["done"] == .bool(false), "events remain after seq 2")
            let final = try await client.send(.get, "/v1/jobs/\(id)/events?after=3", as: fixture.alice)
            #expect(final.json?["done"] == .bool(true))
            #expect(final.json?["status"] == .string("succeeded"))

            for (query, field) in [("after=-1", "after"), ("after=x", "after"), ("limit=0", "limit"), ("limit=1001", "limit")] {
                expectError(try await client.send(.get, "/v1/jobs/\(id)/events?\(query)", as: fixture.alice),
                            .badRequest, .invalidRequest, field: field)
            }
        }
    }

    // MARK: - Unknown routes

    @Test func unknownRoutesAnswerTheEnvelope() async throws {
        try await withAPI { fixture, client in
            for (method, uri) in [(HTTPRequest.Method.get, "/v1/nope"), (.get, "/nope"), (.post, "/v2/jobs"),
                                  (.delete, "/v1/jobs"), (.put, "/v1/jobs"), (.get, "/v1/projects/app/archive/x"), (.patch, "/healthz")] {
                expectError(try await client.send(method, uri, as: fixture.alice), .notFound, .notFound)
                expectError(try await client.send(method, uri), .notFound, .notFound)
            }
        }
    }
}
