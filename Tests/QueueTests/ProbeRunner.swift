import Foundation
import Synchronization
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// One finished `store-probe` process.
struct ProbeResult: Sendable {
    var arguments: [String]
    var status: Int32
    var output: String
    var errors: String

    /// Non-empty output lines (job ids).
    var lines: [String] { output.split(separator: "\n").map(String.init) }
}

/// Runs the `store-probe` executable (built next to the test bundle) in separate processes.
enum ProbeRunner {
    struct MissingBinary: Error, CustomStringConvertible {
        var searched: [String]
        var description: String {
            "store-probe executable not found (build with `swift build --build-tests`); looked at: \(searched.joined(separator: ", "))"
        }
    }

    /// The `store-probe` binary: next to the running test executable, else in the package's
    /// `.build/debug`.
    static func binary() throws -> String {
        var candidates: [String] = []
        if let argv0 = CommandLine.arguments.first {
            let url = URL(fileURLWithPath: argv0).standardizedFileURL
            candidates.append(url.deletingLastPathComponent().appendingPathComponent("store-probe").path)
            // On some platforms the test runner is inside a `.xctest` bundle directory.
            candidates.append(url.deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("store-probe").path)
        }
        let packageRoot = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(packageRoot.appendingPathComponent(".build/debug/store-probe").path)
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw MissingBinary(searched: candidates)
        }
        return found
    }

    /// Starts one process per argument list at once and waits for all of them; any process
    /// still running after `timeout` is killed (by its pid).
    static func run(_ argumentLists: [[String]], scratch: String, timeout: Duration = .seconds(120)) async throws -> [ProbeResult] {
        let binary = try binary()
        let running = RunningPIDs()
        let statuses = try await withThrowingTaskGroup(of: (Int, Int32)?.self) { group in
            for (index, arguments) in argumentLists.enumerated() {
                group.addTask {
                    (index, try await runOne(binary, arguments, index: index, scratch: scratch, running: running))
                }
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                for pid in running.pids.withLock({ $0 }) { kill(pid, SIGKILL) }
                return nil
            }
            var statuses = [Int32](repeating: -1, count: argumentLists.count)
            var remaining = argumentLists.count
            while remaining > 0, let next = try await group.next() {
                if let (index, status) = next {
                    statuses[index] = status
                    remaining -= 1
                }
            }
            group.cancelAll()
            return statuses
        }
        return try argumentLists.enumerated().map { index, arguments in
            ProbeResult(
                arguments: arguments, status: statuses[index],
                output: try String(contentsOfFile: outputPath(scratch, index, "out"), encoding: .utf8),
                errors: try String(contentsOfFile: outputPath(scratch, index, "err"), encoding: .utf8))
        }
    }

    private static func outputPath(_ scratch: String, _ index: Int, _ stream: String) -> String {
        "\(scratch)/probe-\(index).\(stream)"
    }

    private static func runOne(
        _ binary: String, _ arguments: [String], index: Int, scratch: String, running: RunningPIDs
    ) async throws -> Int32 {
        let outPath = outputPath(scratch, index, "out")
        let errPath = outputPath(scratch, index, "err")
        _ = FileManager.default.createFile(atPath: outPath, contents: nil)
        _ = FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        defer {
            try? out.close()
            try? err.close()
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        return try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Int32, any Error>) in
            process.terminationHandler = { finished in
                running.pids.withLock { _ = $0.remove(finished.processIdentifier) }
                continuation.resume(returning: finished.terminationStatus)
            }
            do {
                try process.run()
                let pid = process.processIdentifier
                if process.isRunning { running.pids.withLock { _ = $0.insert(pid) } }
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
    }
}

/// Pids of probes still running, for the watchdog.
final class RunningPIDs: Sendable {
    let pids = Mutex<Set<Int32>>([])
}
