import Foundation
import GRDB

/// Users and API tokens (`AccountStore`).
extension SQLiteJobStore {
    public func createUser(name: String) async throws -> User {
        let user = User(id: UserID.generate(), name: name, createdAt: now())
        try await database.write("createUser") { db in
            // Checked inside the IMMEDIATE transaction, so two processes cannot both pass it.
            if try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE name = ?", arguments: [name]) == true {
                throw StoreError.duplicate("user \(name)")
            }
            try db.execute(
                sql: "INSERT INTO users (id, name, created_at) VALUES (?, ?, ?)",
                arguments: [user.id.rawValue, name, StoredDate.millis(user.createdAt)])
        }
        return user
    }

    public func user(named name: String) async throws -> User? {
        try await database.read("user") { db in
            try Row.fetchOne(db, sql: "SELECT id, name, created_at FROM users WHERE name = ?", arguments: [name])
                .map(Self.user(row:))
        }
    }

    public func users() async throws -> [User] {
        try await database.read("users") { db in
            try Row.fetchAll(db, sql: "SELECT id, name, created_at FROM users ORDER BY created_at, name")
                .map(Self.user(row:))
        }
    }

    public func addToken(_ token: APIToken, secretHash: String) async throws {
        try await database.write("addToken") { db in
            guard try Bool.fetchOne(db, sql: "SELECT 1 FROM users WHERE id = ?", arguments: [token.userID.rawValue]) == true
            else { throw StoreError.notFound("user \(token.userID)") }
            if try Bool.fetchOne(
                db, sql: "SELECT 1 FROM api_tokens WHERE id = ? OR secret_hash = ?", arguments: [token.id, secretHash]
            ) == true {
                throw StoreError.duplicate("token \(token.id)")
            }
            try db.execute(sql: """
                INSERT INTO api_tokens (id, user_id, label, secret_hash, created_at, revoked_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """, arguments: [
                    token.id, token.userID.rawValue, token.label, secretHash,
                    StoredDate.millis(token.createdAt), token.revokedAt.map(StoredDate.millis),
                ])
        }
    }

    public func revokeToken(id: String) async throws -> Bool {
        let now = StoredDate.millis(now())
        let revoked = try await database.write("revokeToken") { db in
            try db.execute(
                sql: "UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", arguments: [now, id])
            return db.changesCount > 0
        }
        if revoked { feed.notify(.accounts) }
        return revoked
    }

    public func tokens(of userID: UserID) async throws -> [APIToken] {
        try await database.read("tokens") { db in
            try Row.fetchAll(db, sql: """
                SELECT id, user_id, label, created_at, revoked_at FROM api_tokens
                WHERE user_id = ? ORDER BY created_at, id
                """, arguments: [userID.rawValue]).map { row in
                APIToken(
                    id: row["id"], userID: UserID(rawValue: row["user_id"]), label: row["label"],
                    createdAt: StoredDate.date(row["created_at"]),
                    revokedAt: (row["revoked_at"] as Int64?).map(StoredDate.date))
            }
        }
    }

    public func user(forTokenHash hash: String) async throws -> User? {
        try await database.read("userForToken") { db in
            try Row.fetchOne(db, sql: """
                SELECT users.id, users.name, users.created_at FROM api_tokens
                JOIN users ON users.id = api_tokens.user_id
                WHERE api_tokens.secret_hash = ? AND api_tokens.revoked_at IS NULL
                """, arguments: [hash]).map(Self.user(row:))
        }
    }

    private static func user(row: Row) -> User {
        User(id: UserID(rawValue: row["id"]), name: row["name"], createdAt: StoredDate.date(row["created_at"]))
    }
}
