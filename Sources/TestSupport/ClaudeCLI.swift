import Foundation
import Queue
import Subprocess
import SystemPackage

/// Finds and runs the real Claude Code CLI (2.1.330) that tests drive against a
/// ``ScriptedModelServer``.
public enum ClaudeCLI {
    /// Errors locating or running the CLI.
    public enum Failure: Error, Sendable, CustomStringConvertible {
        /// No executable at `path` (from `JOBSERVER_CLAUDE_PATH` or the default location).
        case notFound(path: String)
        /// The run did not finish within the timeout and was killed.
        case timedOut(seconds: Double)

        public var description: String {
            switch self {
            case .notFound(let path):
                "Claude CLI not found at \(path); set JOBSERVER_CLAUDE_PATH or run "
                    + "`pip install --no-deps --target <package>/.tools/claude-agent-sdk claude-agent-sdk==0.2.187`"
            case .timedOut(let seconds):
                "Claude CLI did not finish within \(seconds) s"
            }
        }
    }

    /// The package root, derived from this source file's location (`Sources/TestSupport/…`).
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .deletingLastPathComponent()
        .deletingLastPathComponent()

    /// Where pip installs the CLI by default: `<package root>/.tools/claude-agent-sdk/claude_agent_sdk/_bundled/claude`.
    public static var defaultPath: String {
        packageRoot.appendingPathComponent(".tools/claude-agent-sdk/claude_agent_sdk/_bundled/claude").path
    }

    /// The CLI's path: `JOBSERVER_CLAUDE_PATH` when set and non-empty, else ``defaultPath``.
    /// Does not check that the file exists (see ``locate(environment:)``).
    public static func path(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let configured = environment["JOBSERVER_CLAUDE_PATH"], !configured.isEmpty {
            return configured
        }
        return defaultPath
    }

    /// The CLI's path, checked to be an executable file.
    public static func locate(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> String {
        let candidate = path(environment: environment)
        guard FileManager.default.isExecutableFile(atPath: candidate) else {
            throw Failure.notFound(path: candidate)
        }
        return candidate
    }

    /// Whether the CLI is installed (tests can skip with a clear reason when it is not).
    public static var isAvailable: Bool { (try? locate()) != nil }

    /// The tools tests allow: enough to write, edit, run and search, nothing networked.
    public static let defaultTools = "Read,Write,Edit,Bash,Glob,Grep"

    /// The outcome of one CLI run.
    public struct RunResult: Sendable {
        /// Exit code, or `-signal` when the process was killed by a signal.
        public var exitCode: Int32
        /// Non-empty stdout lines (with `--output-format stream-json`, one JSON object each).
        public var stdoutLines: [String]
        /// Everything written to stderr.
        public var stderr: String

        /// `stdoutLines` parsed as JSON, skipping lines that are not JSON.
        public var events: [JSONValue] { stdoutLines.compactMap { JSONValue.parse($0) } }

        /// The events whose `type` is `type` (`system`, `assistant`, `user`, `result`, …).
        public func events(ofType type: String) -> [JSONValue] {
            events.filter { $0["type"]?.stringValue == type }
        }

        /// The final `result` event, if the CLI printed one.
        public var result: JSONValue? { events(ofType: "result").last }
    }

    /// Runs `claude -p PROMPT --output-format stream-json --verbose` against `baseURL`, in `cwd`,
    /// with a scrubbed environment and a fresh temporary `$HOME` (removed afterwards), so runs
    /// never see the developer's config or each other.
    ///
    /// Retries are disabled (`CLAUDE_CODE_MAX_RETRIES=0`) so scripted API errors end the run at
    /// once. The process is killed when `timeout` elapses or the calling task is cancelled.
    public static func run(
        prompt: String,
        cwd: String,
        baseURL: String,
        apiKey: String = "sk-test",
        tools: String = defaultTools,
        maxTurns: Int = 10,
        extraArgs: [String] = [],
        extraEnvironment: [String: String] = [:],
        timeout: Duration = .seconds(60)
    ) async throws -> RunResult {
        let executable = try locate()
        let home = FileManager.default.temporaryDirectory
            .appendingPathComponent("claude-home-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }

        var environment: [Environment.Key: String] = [
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": home.path,
            "ANTHROPIC_BASE_URL": baseURL,
            "ANTHROPIC_API_KEY": apiKey,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
        ]
        for (key, value) in extraEnvironment {
            environment[Environment.Key(stringLiteral: key)] = value
        }
        let arguments = [
            "-p", prompt, "--output-format", "stream-json", "--verbose",
            "--tools", tools, "--allowedTools", tools, "--max-turns", String(maxTurns),
        ] + extraArgs
        let finalEnvironment = environment

        return try await withThrowingTaskGroup(of: RunResult?.self) { group in
            group.addTask {
                let outcome = try await Subprocess.run(
                    .path(FilePath(executable)),
                    arguments: Arguments(arguments),
                    environment: .custom(finalEnvironment),
                    workingDirectory: FilePath(cwd),
                    output: .string(limit: 64 << 20),
                    error: .string(limit: 8 << 20)
                )
                let code: Int32 = switch outcome.terminationStatus {
                case .exited(let value): Int32(value)
                case .signaled(let signal): -Int32(signal)
                }
                let lines = outcome.standardOutput
                    .split(whereSeparator: \.isNewline)
                    .map(String.init)
                    .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
                return RunResult(exitCode: code, stdoutLines: lines, stderr: outcome.standardError)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let result = first else {
                let components = timeout.components
                throw Failure.timedOut(seconds: Double(components.seconds) + Double(components.attoseconds) / 1e18)
            }
            return result
        }
    }
}
