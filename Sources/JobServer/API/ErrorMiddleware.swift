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
        } catch let error as APIError {
            return try error.response(from: request, context: context)
        } catch let error as JobError {
            return try APIError(error).response(from: request, context: context)
        } catch let error as StoreError {
            return try Self.storeError(error, context: context).response(from: request, context: context)
        } catch let error as HTTPError {
            return try Self.translate(error).response(from: request, context: context)
        } catch {
            let correlation = UUID().uuidString.lowercased()
            context.logger.error("unhandled error", metadata: ["correlation_id": "\(correlation)", "error": "\(error)"])
            return try APIError(.internal, "internal error", status: .internalServerError,
                                details: .object(["correlation_id": .string(correlation)]))
                .response(from: request, context: context)
        }
    }

    static func storeError(_ error: StoreError, context: Context) -> APIError {
        switch error {
        case .idempotencyConflict(let existing):
            return APIError(.conflict, "Idempotency-Key was already used with a different request body",
                            details: .object(["job_id": .string(existing.rawValue)]))
        case .notFound(let what):
            return APIError.notFound(what)
        case .duplicate(let what):
            return APIError(.conflict, "\(what) already exists")
        case .leaseLost, .busy, .unavailable:
            let correlation = UUID().uuidString.lowercased()
            context.logger.error("store error", metadata: ["correlation_id": "\(correlation)", "error": "\(error)"])
            return APIError(.internal, "the job store is unavailable", status: .internalServerError,
                            details: .object(["correlation_id": .string(correlation)]))
        }
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
