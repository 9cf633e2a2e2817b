import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Queue

/// Turns every error into the documented envelope, so no route ever answers a bare 500 or an
/// empty 404. Unknown errors become `E500` with a correlation id that is also logged.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return try APIError.from(error, logger: context.logger).response(from: request, context: context)
        }
    }
}

extension APIError {
    /// Any error as the API reports it: API and job errors as they are, store errors by their
    /// code, framework errors translated; anything else (a bug, an unavailable store) is
    /// `E500` with a correlation id that is logged with the error.
    static func from(_ error: any Error, logger: Logger) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as JobError:
            return APIError(error)
        case StoreError.idempotencyConflict(let existing):
            return APIError(.conflict, "Idempotency-Key was already used with a different request body",
                            details: .object(["job_id": .string(existing.rawValue)]))
        case StoreError.notFound(let what):
            return APIError.notFound(what)
        case StoreError.duplicate(let what):
            return APIError(.conflict, "\(what) already exists")
        case let error as HTTPError:
            return translate(error)
        case let error as StoreError:
            return internalError(status: .internalServerError, message: "the job store is unavailable", error: error, logger: logger)
        default:
            return internalError(status: .internalServerError, message: "internal error", error: error, logger: logger)
        }
    }

    private static func internalError(status: HTTPResponse.Status, message: String, error: any Error, logger: Logger) -> APIError {
        let correlation = UUID().uuidString.lowercased()
        logger.error("unhandled error", metadata: ["correlation_id": "\(correlation)", "error": "\(error)"])
        return APIError(.internal, message, status: status, details: .object(["correlation_id": .string(correlation)]))
    }

    static func translate(_ error: HTTPError) -> APIError {
        switch error.status {
        case .notFound: APIError(.notFound, "no such route", status: .notFound)
        case .methodNotAllowed: APIError(.invalidRequest, "method not allowed on this route", status: .methodNotAllowed)
        case .contentTooLarge: APIError(.invalidRequest, "request body too large", status: .contentTooLarge)
        case .unauthorized: APIError(.unauthorized, error.body ?? "missing or invalid API token", status: .unauthorized)
        default: APIError(.invalidRequest, error.body ?? "bad request", status: error.status.code < 500 ? error.status : .badRequest)
        }
    }
}
