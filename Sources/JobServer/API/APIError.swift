import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Queue

/// An error answered with the service's error envelope (DESIGN §4):
/// `{"error": {"code", "name", "message", "status", "retryable", "details"}}`.
public struct APIError: HTTPResponseError, Sendable {
    public var code: ErrorCode
    public var message: String
    public var status: HTTPResponse.Status
    public var details: JSONValue?
    public var headers: HTTPFields

    public init(_ code: ErrorCode, _ message: String, status: HTTPResponse.Status? = nil,
                details: JSONValue? = nil, headers: HTTPFields = [:]) {
        self.code = code
        self.message = message
        self.status = status ?? HTTPResponse.Status(code: code.defaultHTTPStatus)
        self.details = details
        self.headers = headers
    }

    /// A job-level error as an HTTP answer: a file-access error about a size limit is 413.
    public init(_ error: JobError, status: HTTPResponse.Status? = nil) {
        var chosen = status
        if chosen == nil, error.code == .fileAccess, error.details?["limit"] != nil { chosen = .contentTooLarge }
        self.init(error.code, error.message, status: chosen, details: error.details)
    }

    /// The envelope as a JSON value (also used for job errors and WebSocket close reasons).
    public var envelope: JSONValue {
        var body = JobView.errorFields(JobError(code, message, details: details))
        body["status"] = status.code == 0 ? .null : .number(Double(status.code))
        return .object(["error": .object(body)])
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers = self.headers
        headers[.contentType] = "application/json"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: envelope.jsonText())))
    }

    public static func invalid(_ message: String, field: String? = nil, status: HTTPResponse.Status = .badRequest) -> APIError {
        APIError(.invalidRequest, message, status: status, details: field.map { .object(["field": .string($0)]) })
    }

    /// The same error with `details.field` set, keeping the other details.
    public func naming(field: String) -> APIError {
        var copy = self
        var details = self.details?.objectValue ?? [:]
        details["field"] = .string(field)
        copy.details = .object(details)
        return copy
    }

    public static func notFound(_ what: String) -> APIError {
        APIError(.notFound, "\(what) not found")
    }
}
