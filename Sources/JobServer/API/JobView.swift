import Foundation
import Queue

/// The public JSON shape of a job (DESIGN §4), built from the stored record.
enum JobView {
    static func json(_ job: JobRecord, queuePosition: Int? = nil) -> JSONValue {
        let request = try? JSONValue.decode(JobRequest.self, from: job.payload)
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
        if let request {
            object["prompt"] = .string(request.prompt)
            object["files"] = .array(request.files.map(JSONValue.string))
            object["options"] = (try? JSONValue.encode(request.options)) ?? .null
            object["metadata"] = request.metadata ?? .object([:])
        }
        return .object(object)
    }

    /// A job error as published: code, name, message, retryable, details.
    static func error(_ error: JobError) -> JSONValue {
        .object([
            "code": .string(error.code.rawValue), "name": .string(error.code.name), "message": .string(error.message),
            "retryable": .bool(error.code.retryable), "details": error.details ?? .object([:]),
        ])
    }

    static func timestamp(_ date: Date) -> JSONValue {
        .string(date.formatted(Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
    }
}

extension JSONValue {
    /// Encodes any Codable value as a `JSONValue`.
    static func encode(_ value: some Encodable) throws -> JSONValue {
        let data = try JSONEncoder().encode(value)
        return try JSONDecoder().decode(JSONValue.self, from: data)
    }

    /// Decodes a Codable value from a `JSONValue`.
    static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(value))
    }
}
