import AsyncHTTPClient
import Foundation
import NIOCore
import Queue

/// Runs the real service for end-to-end tests: `jobserver serve` and `jobserver worker` as
/// separate processes over one data directory, talking only through the store.
///
/// Every process is started and stopped by its own pid. `shutdown()` must be called (tests use
/// `withServiceHarness`), and kills whatever is left.
public final class ServiceHarness: @unchecked Sendable {
    public let dataDirectory: String
    public let modelBaseURL: String
    public private(set) var port = 0
    private var server: Process?
    private var extraServers: [Process] = []
    private var workers: [Process] = []
    private let lock = NSLock()

    public init(dataDirectory: String, modelBaseURL: String) {
        self.dataDirectory = dataDirectory
        self.modelBaseURL = modelBaseURL
    }

    public var baseURL: String { "http://127.0.0.1:\(port)" }

    /// The `ws://` URL of `path` on the API server.
    public func webSocketURL(_ path: String) -> String { "ws://127.0.0.1:\(port)" + path }

    /// The built `jobserver` binary, next to the test bundle.
    public static var binary: String { BuildProducts.path(of: "jobserver") }

    /// Runs a `jobserver` admin command to completion and returns its standard output.
    @discardableResult
    public func admin(_ arguments: [String]) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments + ["--data", dataDirectory]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        await Self.waitForExit(process)
        // Admin output is a few lines: it sits in the pipe's buffer until the process is gone.
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw HarnessError("jobserver \(arguments.joined(separator: " ")) exited \(process.terminationStatus): \(text)")
        }
        return text
    }

    /// Creates a user and returns its API token.
    public func createUser(_ name: String) async throws -> String {
        let output = try await admin(["user", "create", name])
        guard let token = output.split(separator: "\n").last.map(String.init), token.hasPrefix("js_") else {
            throw HarnessError("no token in: \(output)")
        }
        return token
    }

    /// Starts the API server on a free port and waits until it answers. Called again after
    /// `killServer()`, it starts a new server process (on a new port) over the same store.
    /// - Parameter arguments: extra `jobserver serve` flags (stream limits, queue cap, …).
    public func startServer(arguments: [String] = []) async throws {
        port = try await launchServer(arguments, name: "server") { process in lock.withLock { server = process } }
    }

    /// Starts one more API server on the same data directory (any number of `serve` processes
    /// share one store) and returns its base URL, for `request(…, baseURL:)`.
    public func startAdditionalServer(_ arguments: [String] = []) async throws -> String {
        let index = lock.withLock { extraServers.count + 1 }
        let bound = try await launchServer(arguments, name: "server-\(index)") { process in
            lock.withLock { extraServers.append(process) }
        }
        return "http://127.0.0.1:\(bound)"
    }

    private func launchServer(_ arguments: [String], name: String, adopt: (Process) -> Void) async throws -> Int {
        let portFile = dataDirectory + "/\(name).port"
        try? FileManager.default.removeItem(atPath: portFile)
        let process = try spawn(["serve", "--port", "0", "--port-file", portFile] + arguments, environment: [:])
        adopt(process)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let bound = Int(text) {
                return bound
            }
            guard process.isRunning else { throw HarnessError("\(name) exited with \(process.terminationStatus)") }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("\(name) did not start listening")
    }

    /// Kills the API server with SIGKILL (for crash tests) and waits for it to exit.
    public func killServer() async {
        guard let process = lock.withLock({ server }) else { return }
        kill(process.processIdentifier, SIGKILL)
        await Self.waitForExit(process)
    }

    /// Waits for a child process to exit without blocking a thread of the cooperative pool:
    /// the scripted model server and the HTTP client of the same test run on those threads,
    /// and a process under test may need them to finish.
    public static func waitForExit(_ process: Process) async {
        while process.isRunning {
            try? await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Starts a worker process against the scripted model: agents run in the real sandbox, or
    /// as plain child processes with `sandboxed: false` (`--unsafe-direct-agent`).
    @discardableResult
    public func startWorker(concurrency: Int = 2, leaseSeconds: Int = 30, heartbeatSeconds: Double = 1,
                            graceSeconds: Int = 10, apiKey: String? = "sk-test-harness", sandboxed: Bool = true,
                            extraArguments: [String] = [],
                            extraEnvironment: [String: String] = [:]) throws -> Process {
        var environment = [
            "ANTHROPIC_BASE_URL": modelBaseURL,
            "CLAUDE_CODE_MAX_RETRIES": "0",
            "JOBSERVER_CLAUDE_PATH": ClaudeCLI.path(),
        ]
        if let apiKey { environment["ANTHROPIC_API_KEY"] = apiKey }
        environment.merge(extraEnvironment) { _, new in new }
        let process = try spawn([
            "worker", "--concurrency", String(concurrency), "--lease-seconds", String(leaseSeconds),
            "--heartbeat-seconds", String(heartbeatSeconds), "--shutdown-grace-seconds", String(graceSeconds),
        ] + (sandboxed ? [] : ["--unsafe-direct-agent"]) + extraArguments, environment: environment)
        lock.withLock { workers.append(process) }
        return process
    }

    /// Stops everything this harness started, by pid.
    public func shutdown() async {
        let processes = lock.withLock { (server.map { [$0] } ?? []) + extraServers + workers }
        for process in processes where process.isRunning { kill(process.processIdentifier, SIGKILL) }
        for process in processes { await Self.waitForExit(process) }
    }

    private func spawn(_ arguments: [String], environment: [String: String]) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = arguments + ["--data", dataDirectory]
        var merged = ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("ANTHROPIC_") }
        merged["LOG_LEVEL"] = merged["LOG_LEVEL"] ?? "warning"
        merged.merge(environment) { _, new in new }
        process.environment = merged
        let log = FileHandle(forWritingAtPath: dataDirectory + "/processes.log") ?? {
            FileManager.default.createFile(atPath: dataDirectory + "/processes.log", contents: nil)
            return FileHandle(forWritingAtPath: dataDirectory + "/processes.log")
        }()
        log?.seekToEndOfFile()
        process.standardOutput = log ?? FileHandle.nullDevice
        process.standardError = log ?? FileHandle.nullDevice
        try process.run()
        return process
    }

    // MARK: HTTP

    /// One HTTP exchange with the API server.
    public struct Reply: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: [UInt8]

        public var json: JSONValue? { JSONValue.parse(String(decoding: body, as: UTF8.self)) }
        public var text: String { String(decoding: body, as: UTF8.self) }

        public func header(_ name: String) -> String? {
            headers.first { $0.0.lowercased() == name.lowercased() }?.1
        }
    }

    public func request(
        _ method: String, _ path: String, token: String? = nil, body: [UInt8]? = nil,
        json: JSONValue? = nil, headers: [String: String] = [:], timeout: Duration = .seconds(60),
        baseURL server: String? = nil
    ) async throws -> Reply {
        var request = HTTPClientRequest(url: (server ?? baseURL) + path)
        request.method = .init(rawValue: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: json.jsonText()))
        } else if let body {
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let (seconds, attoseconds) = timeout.components
        let response = try await HTTPClient.shared.execute(
            request, timeout: .milliseconds(seconds * 1000 + attoseconds / 1_000_000_000_000_000))
        let collected = try await response.body.collect(upTo: 256 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers.map { ($0.name, $0.value) },
                     body: Array(collected.readableBytesView))
    }

    /// Polls a job until it reaches a terminal state and returns it.
    public func waitForJob(_ id: String, token: String, timeout: Duration = .seconds(60)) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let reply = try await request("GET", "/v1/jobs/\(id)", token: token)
            if let job = reply.json, let status = job["status"]?.stringValue,
               ["succeeded", "failed", "cancelled"].contains(status) {
                return job
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw HarnessError("job \(id) did not finish within \(timeout)")
    }

    /// Waits until a job reaches `status` (for example `running`).
    public func waitForStatus(_ id: String, _ status: String, token: String, timeout: Duration = .seconds(60)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if try await request("GET", "/v1/jobs/\(id)", token: token).json?["status"]?.stringValue == status { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("job \(id) never reached \(status)")
    }
}

/// Starts a harness with a fresh data directory and a scripted model, runs `body`, and
/// always stops every process afterwards.
public func withServiceHarness<T>(
    model: ScriptedModelServer, _ body: (ServiceHarness) async throws -> T
) async throws -> T {
    try await withTemporaryDirectory { directory in
        let harness = ServiceHarness(dataDirectory: directory, modelBaseURL: model.baseURL)
        do {
            let result = try await body(harness)
            await harness.shutdown()
            return result
        } catch {
            await harness.shutdown()
            throw error
        }
    }
}

public struct HarnessError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Paths of executables built by this package (next to the running test binary).
public enum BuildProducts {
    public static func path(of name: String) -> String {
        let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var candidates: [URL] = []
        if let first = CommandLine.arguments.first {
            var directory = URL(fileURLWithPath: first).resolvingSymlinksInPath().deletingLastPathComponent()
            // Inside an .xctest bundle the binary sits a few levels down.
            for _ in 0..<4 {
                candidates.append(directory.appendingPathComponent(name))
                directory = directory.deletingLastPathComponent()
            }
        }
        candidates.append(packageRoot.appendingPathComponent(".build/debug/\(name)"))
        return (candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) } ?? candidates.last!).path
    }
}
