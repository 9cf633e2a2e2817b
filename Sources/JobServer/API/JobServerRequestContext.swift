import Hummingbird
import Logging
import Queue

/// The request context of every route: the authenticated user once `AuthMiddleware` ran.
public struct JobServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var user: User?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.user = nil
    }

    /// Bodies are collected explicitly with per-route limits; this is the default cap.
    public var maxUploadSize: Int { 1 << 20 }

    /// The authenticated user; routes behind `AuthMiddleware` always have one.
    public func requireUser() throws -> User {
        guard let user else { throw APIError(.unauthorized, "missing or invalid API token", status: .unauthorized) }
        return user
    }
}
