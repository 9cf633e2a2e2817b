import ArgumentParser
import Foundation
import Queue

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "migrate", abstract: "Create or upgrade the store's schema.")

    @OptionGroup var store: StoreOptions

    func run() async throws {
        _ = try store.openStore()
        print("store ready at \(store.storeURL ?? store.dataDirectory.storeFile)")
    }
}

struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user", abstract: "Manage users.", subcommands: [Create.self, List.self, LimitsCommand.self])

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a user and print its first API token (shown once, alone on the last line).")

        @OptionGroup var store: StoreOptions

        @Argument(help: "The user's unique name.")
        var name: String

        func validate() throws {
            guard name.wholeMatch(of: /[A-Za-z0-9][A-Za-z0-9._@-]{0,63}/) != nil else {
                throw ValidationError("user names are 1-64 characters: letters, digits, '.', '_', '@', '-'")
            }
        }

        func run() async throws {
            let accounts = try store.openStore()
            let user = try await accounts.createUser(name: name)
            let secret = try await TokenCommand.issue(for: user, label: "initial", accounts: accounts)
            print("created user \(user.name) (\(user.id))")
            print(secret)
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users.")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            for user in try await store.openStore().users() { print("\(user.id)\t\(user.name)") }
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Manage API tokens.", subcommands: [Create.self, Revoke.self, List.self])

    static func issue(for user: User, label: String, accounts: some AccountStore) async throws -> String {
        let secret = TokenHasher.makeSecret()
        let token = APIToken(id: TokenHasher.makeTokenID(), userID: user.id, label: label, createdAt: Date())
        try await accounts.addToken(token, secretHash: TokenHasher.hash(secret))
        return secret
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create another token for a user; printed once.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user's name.") var user: String
        @Option(help: "A label to recognise the token by.") var label = "api"

        func run() async throws {
            let accounts = try store.openStore()
            guard let owner = try await accounts.user(named: user) else { throw ValidationError("no user named '\(user)'") }
            print(try await TokenCommand.issue(for: owner, label: label, accounts: accounts))
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token by its id (tok_…).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The token id.") var id: String

        func run() async throws {
            guard try await store.openStore().revokeToken(id: id) else { throw ValidationError("no live token with id '\(id)'") }
            print("revoked \(id)")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a user's tokens (ids and labels, never secrets).")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The user's name.") var user: String

        func run() async throws {
            let accounts = try store.openStore()
            guard let owner = try await accounts.user(named: user) else { throw ValidationError("no user named '\(user)'") }
            for token in try await accounts.tokens(of: owner.id) {
                print("\(token.id)\t\(token.label)\t\(token.revokedAt == nil ? "live" : "revoked")")
            }
        }
    }
}

struct QueueCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queue", abstract: "Inspect the queue.", subcommands: [Stats.self])

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Job counts by status.")
        @OptionGroup var store: StoreOptions

        func run() async throws {
            let stats = try await store.openStore().stats()
            for status in JobStatus.allCases { print("\(status.rawValue)\t\(stats.counts[status] ?? 0)") }
        }
    }
}
