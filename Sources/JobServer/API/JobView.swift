import Foundation
import Queue

/// The public JSON shape of a job (DESIGN §4), built from the stored record.
enum JobView {
    static func json(_ job: JobRecord, queuePosition: Int? = nil) -> JSONValue {
        var object: [String: JSONValue] = [
            "id": .string(job.id.rawValue),
            "type": .string(job.kind),
            "project": .string(job.project),
            "status": .string(job.status.rawValue),
            "priority": .number(Double(job.priority)),
            "attempt": .number(Double(job.attempt)),
            "max_attempts": .number(Double(job.maxAttempts)),
            "created_at": timestamp(job.createdAt),
            "started_at": job.startedAt.map(timestamp) ?? .null,
            "finished_at": job.finishedAt.map(timestamp) ?? .null,
            "cancel_requested": .bool(job.cancelRequested),
            "last_event_seq": .number(Double(job.lastEventSeq)),
            "result": job.result ?? .null,
            "metrics": job.metrics ?? .null,
            "error": job.error.map(error) ?? .null,
        ]
        if job.status == .queued {
            object["queue_position"] = queuePosition.map { .number(Double($0)) } ?? .null
            if job.notBefore > job.createdAt { object["not_before"] = timestamp(job.notBefore) }
        }
        // The payload is the validated request as `JobRequest.json` wrote it.
        object["prompt"] = job.payload["prompt"] ?? .null
        object["files"] = job.payload["files"] ?? .array([])
        object["options"] = job.payload["options"] ?? .object([:])
        if case .object(let metadata)? = job.payload["metadata"] {
            object["metadata"] = .object(metadata)
        } else {
            object["metadata"] = .object([:])
        }
        return .object(object)
    }

    /// A job error as published: code, name, message, retryable, details.
    static func error(_ error: JobError) -> JSONValue {
        .object(errorFields(error))
    }

    /// The fields every error envelope shares (DESIGN §4): a job's `error`, the HTTP envelope
    /// (which adds `status`, `APIError`) and a stream's close reason (`StreamFailure`).
    static func errorFields(_ error: JobError) -> [String: JSONValue] {
        [
            "code": .string(error.code.rawValue), "name": .string(error.code.name), "message": .string(error.message),
            "retryable": .bool(error.code.retryable), "details": error.details ?? .object([:]),
        ]
    }

    static func timestamp(_ date: Date) -> JSONValue {
        .string(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
    }
}

extension JSONValue {
    /// Encodes any Codable value as a `JSONValue`.
    static func encode(_ value: some Encodable) throws -> JSONValue {
        let data = try JSONEncoder().encode(value)
        guard let json = JSONValue.parse(bytes: Array(data)) else {
            throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "not JSON"))
        }
        return json
    }

    /// Decodes a Codable value from a `JSONValue`.
    static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        var bytes: [UInt8] = []
        value.write(to: &bytes)
        return try JSONDecoder().decode(T.self, from: Data(bytes))
    }
}
