import Foundation

/// A user of the service.
public struct User: Sendable, Hashable, Codable {
    public var id: UserID
    public var name: String
    public var createdAt: Date

    public init(id: UserID, name: String, createdAt: Date) {
        self.id = id
        self.name = name
        self.createdAt = createdAt
    }
}

/// An API token's stored metadata. The secret itself is never stored, only its hash.
public struct APIToken: Sendable, Hashable, Codable {
    public var id: String
    public var userID: UserID
    public var label: String
    public var createdAt: Date
    public var revokedAt: Date?

    public init(id: String, userID: UserID, label: String, createdAt: Date, revokedAt: Date? = nil) {
        self.id = id
        self.userID = userID
        self.label = label
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }
}

/// Users and their API tokens.
///
/// Tokens are looked up by the hash of their secret; the store never sees a secret.
public protocol AccountStore: Sendable {
    /// - Throws: `StoreError.duplicate` when the name is taken.
    func createUser(name: String) async throws -> User
    func user(named name: String) async throws -> User?
    func users() async throws -> [User]
    func addToken(_ token: APIToken, secretHash: String) async throws
    /// Revokes a token by id; returns `false` when no live token has that id.
    func revokeToken(id: String) async throws -> Bool
    func tokens(of userID: UserID) async throws -> [APIToken]
    /// The owner of a live token with this secret hash.
    func user(forTokenHash hash: String) async throws -> User?
}
