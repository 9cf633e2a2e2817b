import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Queue

/// `/v1/jobs`: submit, read, list, cancel, and page through or stream (SSE) events.
struct JobsController {
    let store: any JobStore
    let workspaces: WorkspaceStore
    /// How submissions are admitted (per-user limits, queue cap; see `JobsController+Limits`).
    var admission = Admission()
    let hub: JobEventHub

    static let maxBodyBytes = 512 * 1024
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let replayed = HTTPField.Name("Idempotent-Replayed")!

    func addRoutes(to group: RouterGroup<JobServerRequestContext>) {
        group.post("jobs", use: submit)
        group.get("jobs", use: list)
        group.get("jobs/:id", use: get)
        group.post("jobs/:id/cancel", use: cancel)
        group.get("jobs/:id/events", use: events)
    }

    @Sendable func submit(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let body = try await JSONBody.collect(request, limit: Self.maxBodyBytes)
        let key = try Self.idempotencyKey(in: request.headers)
        let outcome = try await JobSubmission(store: store, workspaces: workspaces, admission: admission)
            .submit(body, user: user, idempotencyKey: key)
        return try await accepted(outcome.job, replayed: outcome.replayed, rate: outcome.rate)
    }

    /// The submission answer. It leaves out `queue_position`, which costs a count over the
    /// queue: the hot path of every submission stays independent of the queue's depth.
    private func accepted(_ job: JobRecord, replayed: Bool, rate: RateLimitStatus? = nil) async throws -> Response {
        var headers: HTTPFields = [.location: "/v1/jobs/\(job.id)"]
        if replayed { headers[Self.replayed] = "true" }
        RateLimitFields.add(rate, to: &headers)
        return JSONBody.response(JobView.json(job), status: .accepted, headers: headers)
    }

    @Sendable func get(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let job = try await ownJob(context)
        let position = job.status == .queued ? try await store.queuePosition(of: job.id) : nil
        return JSONBody.response(JobView.json(job, queuePosition: position))
    }

    @Sendable func list(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let query = request.uri.queryParameters
        var filter = JobFilter()
        if let status = query["status"].map(String.init) {
            guard let value = JobStatus(rawValue: status) else {
                throw APIError.invalid("unknown status '\(status)'", field: "status")
            }
            filter.status = value
        }
        if let kind = query["type"].map(String.init) {
            guard JobKind(rawValue: kind) != nil else { throw APIError.invalid("unknown job type '\(kind)'", field: "type") }
            filter.kind = kind
        }
        if let project = query["project"].map(String.init) {
            do {
                filter.project = try ProjectName(validating: project).rawValue
            } catch {
                throw APIError(error).naming(field: "project")
            }
        }
        let limit = try Self.intParameter(query["limit"], name: "limit", range: 1...100) ?? 20
        var cursor: JobID?
        if let text = query["cursor"].map(String.init) {
            guard let id = JobID(rawValue: text) else { throw APIError.invalid("malformed cursor", field: "cursor") }
            cursor = id
        }
        let jobs = try await store.jobs(userID: user.id, filter: filter, after: cursor, limit: limit + 1)
        let page = Array(jobs.prefix(limit))
        let next: JSONValue = jobs.count > limit ? page.last.map { .string($0.id.rawValue) } ?? .null : .null
        return JSONBody.response(.object(["jobs": .array(page.map { JobView.json($0) }), "next_cursor": next]))
    }

    @Sendable func cancel(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let user = try context.requireUser()
        let id = try Self.jobID(context)
        guard let job = try await store.requestCancel(id, userID: user.id) else { throw APIError.notFound("job") }
        if job.status == .succeeded || job.status == .failed {
            throw APIError(.conflict, "job already \(job.status.rawValue)", status: .conflict,
                           details: .object(["status": .string(job.status.rawValue)]))
        }
        return JSONBody.response(JobView.json(job), status: job.status == .cancelled ? .ok : .accepted)
    }

    @Sendable func events(_ request: Request, context: JobServerRequestContext) async throws -> Response {
        let job = try await ownJob(context)
        if EventSourceStream.isRequested(by: request) {
            let after = try EventSourceStream.position(of: request)
            return EventSourceStream(hub: hub).response(job: job.id, after: after, channel: context.channel)
        }
        let query = request.uri.queryParameters
        let after = try Self.intParameter(query["after"], name: "after", range: 0...Int.max) ?? 0
        let limit = try Self.intParameter(query["limit"], name: "limit", range: 1...1000) ?? 100
        let events = try await store.events(of: job.id, after: Int64(after), limit: limit)
        let nextAfter = events.last?.seq ?? Int64(after)
        var text = "{\"job_id\":\"\(job.id)\",\"status\":\"\(job.status.rawValue)\",\"next_after\":\(nextAfter),"
        text += "\"done\":\(job.status.isTerminal && nextAfter >= job.lastEventSeq),\"events\":["
        text += events.map { EventJSON.render($0) }.joined(separator: ",")
        text += "]}"
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private func ownJob(_ context: JobServerRequestContext) async throws -> JobRecord {
        let user = try context.requireUser()
        let id = try Self.jobID(context)
        guard let job = try await store.job(id, userID: user.id) else { throw APIError.notFound("job") }
        return job
    }

    /// A malformed id cannot name anyone's job: it is simply not found.
    static func jobID(_ context: JobServerRequestContext) throws -> JobID {
        guard let text = context.parameters.get("id"), let id = JobID(rawValue: text) else {
            throw APIError.notFound("job")
        }
        return id
    }

    static func idempotencyKey(in headers: HTTPFields) throws(APIError) -> String? {
        guard let key = headers[idempotencyKey] else { return nil }
        return try JobSubmission.validateIdempotencyKey(key, field: "Idempotency-Key")
    }

    static func intParameter(_ value: Substring?, name: String, range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let value else { return nil }
        guard let number = Int(value), range.contains(number) else {
            throw APIError.invalid("'\(name)' must be an integer between \(range.lowerBound) and \(range.upperBound)", field: name)
        }
        return number
    }
}

/// Renders stored events without re-encoding their data, which is already JSON text.
enum EventJSON {
    /// `{"seq", "type", "time", "data"}`, led by `"job_id"` when given (stream messages).
    static func render(_ event: JobEvent, jobID: JobID? = nil) -> String {
        let time = JobView.timestamp(event.time).jsonText()
        let job = jobID.map { "\"job_id\":\(JSONValue.string($0.rawValue).jsonText())," } ?? ""
        return "{\(job)\"seq\":\(event.seq),\"type\":\(JSONValue.string(event.type).jsonText()),\"time\":\(time),\"data\":\(event.data)}"
    }
}

/// Reading JSON bodies and writing JSON answers.
enum JSONBody {
    static func collect(_ request: Request, limit: Int) async throws -> JSONValue {
        let buffer: ByteBuffer
        do {
            buffer = try await request.body.collect(upTo: limit)
        } catch {
            throw APIError.invalid("request body larger than \(limit) bytes", status: .contentTooLarge)
        }
        if let type = request.headers[.contentType],
           type.split(separator: ";").first.map({ $0.trimmingCharacters(in: .whitespaces).lowercased() }) != "application/json" {
            throw APIError.invalid("Content-Type must be application/json", status: .unsupportedMediaType)
        }
        guard buffer.readableBytes > 0 else { throw APIError.invalid("request body is empty") }
        guard let value = buffer.withUnsafeReadableBytes({ JSONValue.parse(bytes: $0.assumingMemoryBound(to: UInt8.self)) }) else {
            throw APIError.invalid("request body is not valid JSON")
        }
        return value
    }

    static func response(_ value: JSONValue, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        var headers = headers
        headers[.contentType] = "application/json"
        var bytes: [UInt8] = []
        bytes.reserveCapacity(1024)
        value.write(to: &bytes, sortedKeys: false)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}
