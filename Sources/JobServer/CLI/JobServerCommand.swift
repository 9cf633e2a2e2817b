import ArgumentParser
import Foundation
import Logging
import Queue

/// The `jobserver` command: every role of the service in one binary (DESIGN §2, §7).
public struct JobServerCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "jobserver",
        abstract: "A self-hosted service that runs Claude Code jobs in sandboxed workspaces.",
        subcommands: [ServeCommand.self, WorkerCommand.self, MigrateCommand.self, UserCommand.self,
                      TokenCommand.self, QueueCommand.self])

    public init() {}
}

/// Options shared by every subcommand that opens the store.
struct StoreOptions: ParsableArguments {
    @Option(name: .customLong("data"), help: "Data directory (JOBSERVER_DATA, default ./data).")
    var dataPath: String?

    @Option(name: .customLong("store"), help: "Store URL (JOBSERVER_STORE); default the SQLite file in the data directory.")
    var storeURL: String?

    var dataDirectory: DataDirectory {
        dataPath.map(DataDirectory.init(path:)) ?? DataDirectory.fromEnvironment()
    }

    func openStore() throws -> SQLiteJobStore {
        try dataDirectory.openStore(url: storeURL ?? ProcessInfo.processInfo.environment["JOBSERVER_STORE"])
    }
}

enum LogSetup {
    static func bootstrap(label: String) -> Logger {
        let level = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        return Logger(label: label)
    }
}
