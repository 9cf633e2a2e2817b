import Foundation
import Subprocess
import Synchronization

#if canImport(System)
import System
#else
import SystemPackage
#endif

/// Limits the supervisor enforces from outside the process.
public struct SupervisionLimits: Sendable, Hashable {
    /// Total run time.
    public var wallClock: Duration
    /// Longest silence on standard output.
    public var idle: Duration
    /// Total bytes the process may write to standard output.
    public var maxOutputBytes: Int
    /// Longest single line; a longer one counts as an output breach.
    public var maxLineBytes: Int
    /// Time between asking the process tree to stop and killing the launcher outright.
    public var killGrace: Duration

    public init(
        wallClock: Duration = .seconds(600), idle: Duration = .seconds(120),
        maxOutputBytes: Int = 64 << 20, maxLineBytes: Int = 8 << 20, killGrace: Duration = .milliseconds(500)
    ) {
        self.wallClock = wallClock
        self.idle = idle
        self.maxOutputBytes = maxOutputBytes
        self.maxLineBytes = maxLineBytes
        self.killGrace = killGrace
    }
}

/// Why a supervised process ended.
public enum Termination: Sendable, Hashable {
    case exited(Int32)
    case signaled(Int32)
    case wallClockTimeout
    case idleTimeout
    case cancelled
    case outputLimit
    /// The worker stopped it at a limit it watches itself (for example the workspace's size).
    case limitExceeded(limit: String, amount: Int64)
    /// The process could not be started at all.
    case launchFailed(String)
}

/// Resource usage the launch helper reported for the whole process tree.
public struct ResourceUsage: Sendable, Hashable, Codable {
    public var cpuMs: Int64
    public var maxRSSBytes: Int64
    /// The sandbox limit the job's cgroup reached (`"memory"`, `"pids"`), if any.
    public var limit: String?
    /// Whether cgroup limits were in force (a sandbox without delegated cgroups has rlimits only).
    public var cgroup: Bool?

    enum CodingKeys: String, CodingKey {
        case cpuMs = "cpu_ms"
        case maxRSSBytes = "max_rss_bytes"
        case limit
        case cgroup
    }
}

/// What the supervisor saw of one run.
public struct ProcessReport: Sendable, Hashable {
    public var termination: Termination
    /// The launcher's exit code (the agent's, or 128+signal, or 125 for a failed set-up).
    public var exitCode: Int32?
    public var stderrTail: String
    public var outputBytes: Int
    public var usage: ResourceUsage?
    public var duration: Duration
}

/// A handle to stop a supervised process from outside (a cancel request, a budget breach).
public final class ProcessControl: Sendable {
    private let reason = Locked<Termination?>(nil)

    public init() {}

    /// Asks the process tree to stop; the first reason given wins.
    public func stop(_ why: Termination) {
        reason.withLock { if $0 == nil { $0 = why } }
    }

    var stopReason: Termination? { reason.withLock { $0 } }
}

/// Runs a `PreparedLaunch`, streams its standard output line by line, and makes sure it ends:
/// on wall-clock or idle timeout, on an output breach, on `ProcessControl.stop` and on task
/// cancellation, the launcher is told to kill the agent's process group, then killed itself.
public struct ProcessSupervisor: Sendable {
    public init() {}

    /// - Parameter onLine: called in order for each complete line of standard output (without
    ///   the newline). Slow handling applies back-pressure to the agent, never unbounded memory.
    public func run(
        _ launch: PreparedLaunch, limits: SupervisionLimits, control: ProcessControl = ProcessControl(),
        onLine: @escaping @Sendable (String) async -> Void
    ) async -> ProcessReport {
        let clock = ContinuousClock()
        let start = clock.now
        let activity = Locked(Activity(lastOutput: start))
        var environment: [Environment.Key: String] = [:]
        for (key, value) in launch.environment {
            if let key = Environment.Key(rawValue: key) { environment[key] = value }
        }
        var options = PlatformOptions()
        options.teardownSequence = [.send(signal: .terminate, allowedDurationToNextStep: limits.killGrace)]
        let stderrTail = Locked(TailBuffer(capacity: 8192))
        do {
            let result = try await Subprocess.run(
                .path(FilePath(launch.executable)), arguments: Arguments(launch.arguments),
                environment: .custom(environment), workingDirectory: FilePath(launch.workingDirectory),
                platformOptions: options, input: .none, output: .sequence, error: .sequence
            ) { execution in
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        var splitter = LineSplitter(maxLineBytes: limits.maxLineBytes)
                        do {
                            for try await chunk in execution.standardOutput {
                                let bytes = chunk.withUnsafeBytes { Array($0) }
                                let breach = activity.withLock { state -> Bool in
                                    state.lastOutput = clock.now
                                    state.outputBytes += bytes.count
                                    return state.outputBytes > limits.maxOutputBytes
                                }
                                if breach { control.stop(.outputLimit) }
                                guard control.stopReason != .outputLimit else { continue }
                                for line in splitter.append(bytes) { await onLine(line) }
                                if splitter.overflowed { control.stop(.outputLimit) }
                            }
                            if let last = splitter.finish(), control.stopReason != .outputLimit { await onLine(last) }
                        } catch {
                            // The pipe broke: the process is gone or being killed.
                        }
                    }
                    group.addTask {
                        do {
                            for try await chunk in execution.standardError {
                                chunk.withUnsafeBytes { raw in stderrTail.withLock { $0.append(raw) } }
                            }
                        } catch {}
                    }
                    group.addTask {
                        await Self.watch(execution: execution, start: start, clock: clock, limits: limits,
                                         activity: activity, control: control)
                    }
                    // The readers end when the process tree closes its pipes; then stop watching.
                    await group.next()
                    await group.next()
                    group.cancelAll()
                }
            }
            let stderrText = stderrTail.withLock { $0.text }
            let usage = launch.rusageFile.flatMap(Self.readUsage)
            let exitCode: Int32?
            let natural: Termination
            switch result.terminationStatus {
            case .exited(let code):
                exitCode = code
                natural = code > 128 && code < 128 + 65 ? .signaled(code - 128) : .exited(code)
            case .signaled(let signal):
                exitCode = nil
                natural = .signaled(signal)
            }
            return ProcessReport(
                termination: control.stopReason ?? natural, exitCode: exitCode, stderrTail: stderrText,
                outputBytes: activity.withLock { $0.outputBytes }, usage: usage, duration: clock.now - start)
        } catch {
            return ProcessReport(
                termination: control.stopReason ?? .launchFailed(String(describing: error)), exitCode: nil,
                stderrTail: stderrTail.withLock { $0.text }, outputBytes: 0, usage: nil, duration: clock.now - start)
        }
    }

    /// Polls the limits; on a breach asks the launcher to kill the group, then kills the launcher.
    private static func watch<I, O, E>(
        execution: Execution<I, O, E>, start: ContinuousClock.Instant, clock: ContinuousClock,
        limits: SupervisionLimits, activity: Locked<Activity>, control: ProcessControl
    ) async {
        let tick = Duration.milliseconds(20)
        var terminatedAt: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = clock.now
            if now - start >= limits.wallClock { control.stop(.wallClockTimeout) }
            if now - activity.withLock({ $0.lastOutput }) >= limits.idle { control.stop(.idleTimeout) }
            if control.stopReason != nil {
                if let sent = terminatedAt {
                    if now - sent >= limits.killGrace { try? execution.send(signal: .kill) }
                } else {
                    try? execution.send(signal: .terminate)
                    terminatedAt = now
                }
            }
            try? await Task.sleep(for: tick)
        }
        // Task cancellation of the supervisor itself is a stop too.
        if terminatedAt == nil, control.stopReason == nil, Task.isCancelled {
            control.stop(.cancelled)
            try? execution.send(signal: .terminate)
        }
    }

    private static func readUsage(_ path: String) -> ResourceUsage? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(ResourceUsage.self, from: data)
    }
}

struct Activity: Sendable {
    var lastOutput: ContinuousClock.Instant
    var outputBytes = 0
}

/// The last `capacity` bytes written to a stream.
struct TailBuffer: Sendable {
    let capacity: Int
    private var bytes: [UInt8] = []

    init(capacity: Int) { self.capacity = capacity }

    mutating func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw.suffix(capacity))
        if bytes.count > capacity { bytes.removeFirst(bytes.count - capacity) }
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }
}

/// Splits a byte stream into newline-terminated lines, refusing lines over a limit.
struct LineSplitter {
    let maxLineBytes: Int
    private var pending: [UInt8] = []
    private(set) var overflowed = false

    init(maxLineBytes: Int) { self.maxLineBytes = maxLineBytes }

    mutating func append(_ bytes: [UInt8]) -> [String] {
        var lines: [String] = []
        var start = bytes.startIndex
        while let newline = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
            pending.append(contentsOf: bytes[start..<newline])
            lines.append(String(decoding: pending, as: UTF8.self))
            pending.removeAll(keepingCapacity: true)
            start = newline + 1
        }
        pending.append(contentsOf: bytes[start...])
        if pending.count > maxLineBytes {
            overflowed = true
            pending.removeAll()
        }
        return lines
    }

    mutating func finish() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}
