import Hummingbird
import Logging
import NIOCore
import Queue

/// The request context of every route: the authenticated user once `AuthMiddleware` ran.
public struct JobServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var user: User?
    /// The connection, so a stream whose client stopped reading can be dropped.
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.user = nil
        self.channel = source.channel
    }

    /// Bodies are collected explicitly with per-route limits; this is the default cap.
    public var maxUploadSize: Int { 1 << 20 }

    /// The authenticated user; routes behind `AuthMiddleware` always have one.
    public func requireUser() throws -> User {
        guard let user else { throw APIError(.unauthorized, "missing or invalid API token", status: .unauthorized) }
        return user
    }
}
