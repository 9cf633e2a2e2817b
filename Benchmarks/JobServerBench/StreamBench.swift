// Streaming benchmarks (docs/benchmarks.md): `ws-latency` and `ws-fanout`.
//
// Both submit a job run by the benchmark's `noop-agent` with `events=N interval_us=U pad=B`
// in its prompt: the agent prints N `stream_event` lines, each stamped with `written_at_ns`
// (CLOCK_REALTIME just before it writes the line to its stdout pipe), one every U µs.
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import Queue
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// What one WebSocket subscriber saw.
struct Subscription: Sendable {
    var events = 0
    var inOrder = true
    var ended = false
    var endStatus = ""
    /// Receipt minus `written_at_ns`, ms, for events written after the subscriber connected.
    var latencies: [Double] = []
    var error: String?
    /// CLOCK_REALTIME when the subscriber started connecting.
    var connectedNs: Int64 = 0
}

/// The value of `"key":` as an integer in a JSON text, found by scanning (cheap enough for a
/// thousand subscribers on two cores; the fields are top-level or unique in these messages).
func scanInteger(_ key: String, in bytes: [UInt8]) -> Int64? {
    let needle = Array("\"\(key)\":".utf8)
    guard needle.count <= bytes.count else { return nil }
    var start = 0
    while start + needle.count <= bytes.count {
        if bytes[start] == needle[0], Array(bytes[start..<(start + needle.count)]) == needle { break }
        start += 1
    }
    var index = start + needle.count
    guard index <= bytes.count else { return nil }
    var value: Int64 = 0
    var digits = 0
    while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
        value = value * 10 + Int64(bytes[index] - 48)
        index += 1
        digits += 1
    }
    return digits > 0 ? value : nil
}

/// Follows `/v1/jobs/{id}/stream` from the start until `end` (subprotocol auth, as a browser).
func subscribe(url: String, token: String, jobID: String, measure: Bool) async -> Subscription {
    var logger = Logger(label: "bench-ws")
    logger.logLevel = .critical
    let wsURL = url.replacingOccurrences(of: "http://", with: "ws://") + "/v1/jobs/\(jobID)/stream"
    let configuration = WebSocketClientConfiguration(
        maxFrameSize: 4 << 20, additionalHeaders: [.secWebSocketProtocol: "jobserver.v1, bearer.\(token)"])
    let result = Mutex(Subscription())
    let connectedNs = realtimeNanoseconds()
    do {
        try await WebSocketClient.connect(url: wsURL, configuration: configuration, logger: logger) { inbound, _, _ in
            var state = Subscription()
            state.connectedNs = connectedNs
            var last: Int64 = 0
            for try await message in inbound.messages(maxSize: 16 << 20) {
                let receivedNs = realtimeNanoseconds()
                guard case .text(let text) = message else { continue }
                let bytes = Array(text.utf8)
                if let seq = scanInteger("seq", in: bytes) {
                    state.events += 1
                    if seq != last + 1 { state.inOrder = false }
                    last = seq
                    if measure, let written = scanInteger("written_at_ns", in: bytes), written > connectedNs {
                        state.latencies.append(Double(receivedNs - written) / 1e6)
                    }
                } else if text.contains("\"type\":\"end\"") {
                    state.ended = true
                    state.endStatus = JSONValue.parse(text)?["job"]?["status"]?.stringValue ?? "?"
                }
            }
            result.withLock { $0 = state }
        }
    } catch {
        result.withLock { $0.error = "\(error)" }
    }
    return result.withLock { $0 }
}

/// Submits a noop-agent job printing `events` stamped lines; returns its id.
func submitStreamingJob(_ client: Client, events: Int, intervalMicroseconds: Int, pad: Int) async throws -> String {
    let body = #"{"type":"generate","project":"p","prompt":"events=\#(events) interval_us=\#(intervalMicroseconds) pad=\#(pad)"}"#
    let reply = try await client.send("POST", "/v1/jobs", body: body)
    guard reply.status == 202, let id = reply.json?["id"] as? String else { throw BenchError("submit answered \(reply.status)") }
    return id
}

// MARK: - ws-latency

/// Event latency from the agent's write to a WebSocket client, across processes (agent →
/// worker → SQLite → change feed → server → client), over `--events` events.
func runWebSocketLatency(_ client: Client, _ options: Options) async throws {
    let id = try await submitStreamingJob(client, events: options.jobs, intervalMicroseconds: options.intervalMicroseconds, pad: 0)
    let seen = await subscribe(url: client.url, token: client.token, jobID: id, measure: true)
    if let error = seen.error { throw BenchError("subscriber failed: \(error)") }
    guard !seen.latencies.isEmpty else { throw BenchError("no latency samples (\(seen.events) events)") }
    let sorted = seen.latencies.sorted()
    let mean = sorted.reduce(0, +) / Double(sorted.count)
    let p50 = percentile(sorted, 50), p90 = percentile(sorted, 90), p99 = percentile(sorted, 99)
    print("ws-latency: \(sorted.count) events (of \(seen.events) received, in order: \(seen.inOrder), job \(seen.endStatus)), one every \(options.intervalMicroseconds) µs")
    print("ws-latency: agent write → WebSocket client, ms: p50 \(format(p50, 2))  p90 \(format(p90, 2))  p99 \(format(p99, 2))  min \(format(sorted.first!, 2))  max \(format(sorted.last!, 2))  mean \(format(mean, 2))")
    print("RESULT ws_latency_p50_ms=\(format(p50, 2)) ws_latency_p90_ms=\(format(p90, 2)) ws_latency_p99_ms=\(format(p99, 2)) ws_latency_max_ms=\(format(sorted.last!, 2)) samples=\(sorted.count) in_order=\(seen.inOrder) status=\(seen.endStatus)")
}

// MARK: - ws-fanout

/// The highest RSS seen, shared with the sampling task.
final class PeakRSS: Sendable {
    private let kb: Mutex<Int>
    init(_ kb: Int) { self.kb = Mutex(kb) }
    func record(_ sample: Int) { kb.withLock { $0 = max($0, sample) } }
    var value: Int { kb.withLock { $0 } }
}

/// A process's resident set (kB) and CPU time (user + system, seconds) from /proc.
struct ProcessSample: Sendable {
    var rssKB: Int
    var cpuSeconds: Double

    static func read(pid: Int32) -> ProcessSample? {
        guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? ""),
              let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")")
        else { return nil }
        // Fields after "(comm)": state is field 3; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let utime = Double(fields[11]), let stime = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ProcessSample(rssKB: kb, cpuSeconds: (utime + stime) / ticks)
    }
}

/// `--concurrency` WebSocket subscribers of one job on one server process, connecting while
/// the job runs (each replays what was written, then follows live to the end): the server's
/// RSS (idle, peak, after) and CPU time.
func runWebSocketFanout(_ client: Client, _ options: Options) async throws {
    guard let pid = options.serverPID, let idle = ProcessSample.read(pid: pid) else {
        throw BenchError("ws-fanout needs --server-pid of a running server")
    }
    let subscribers = options.concurrency
    let id = try await submitStreamingJob(client, events: options.jobs, intervalMicroseconds: options.intervalMicroseconds, pad: options.pad)
    // Connect once the job is under way, so every subscriber first replays, then follows.
    while true {
        let job = try await client.send("GET", "/v1/jobs/\(id)").json
        if let seq = job?["last_event_seq"] as? Int, seq >= options.jobs / 4 { break }
        if ["succeeded", "failed", "cancelled"].contains(job?["status"] as? String ?? "") { throw BenchError("the job ended too early") }
        try await Task.sleep(for: .milliseconds(10))
    }
    let peak = PeakRSS(idle.rssKB)
    let start = ContinuousClock.now
    let results = await withTaskGroup(of: Void.self) { group -> [Subscription] in
        group.addTask {
            // Sample the server while the subscribers run.
            while !Task.isCancelled {
                if let sample = ProcessSample.read(pid: pid) { peak.record(sample.rssKB) }
                try? await Task.sleep(for: .milliseconds(25))
            }
        }
        let all = await withTaskGroup(of: Subscription.self) { subs -> [Subscription] in
            for _ in 0..<subscribers {
                subs.addTask { await subscribe(url: client.url, token: client.token, jobID: id, measure: false) }
            }
            var all: [Subscription] = []
            for await one in subs { all.append(one) }
            return all
        }
        group.cancelAll()
        return all
    }
    let elapsed = seconds(ContinuousClock.now - start)
    let busy = ProcessSample.read(pid: pid)
    try await Task.sleep(for: .seconds(1))
    let after = ProcessSample.read(pid: pid)
    // Every event of the log: the worker's status line, the agent's init, its events, its result.
    let job = try await client.send("GET", "/v1/jobs/\(id)").json
    let logLength = (job?["last_event_seq"] as? Int) ?? -1
    let finishedNs = (job?["finished_at"] as? String).flatMap(iso8601).map { Int64($0 * 1e9) } ?? .max
    let live = results.filter { $0.connectedNs > 0 && $0.connectedNs < finishedNs }.count
    let complete = results.filter { $0.ended && $0.inOrder && $0.error == nil && $0.events == logLength }.count
    let failures = results.compactMap(\.error)
    let cpu = (busy?.cpuSeconds ?? idle.cpuSeconds) - idle.cpuSeconds
    let peakMB = Double(peak.value) / 1024
    let idleMB = Double(idle.rssKB) / 1024
    let afterMB = Double(after?.rssKB ?? 0) / 1024
    let messages = results.reduce(0) { $0 + $1.events }
    print("ws-fanout: \(subscribers) subscribers × \(logLength) events (\(options.jobs) agent events of \(options.pad) B padding, one every \(options.intervalMicroseconds) µs): \(complete) complete, in order and ended; \(failures.count) failed\(failures.first.map { " (\($0))" } ?? "")")
    print("ws-fanout: \(live) subscribers started connecting while the job ran (they replay what was written, then follow live)")
    print("ws-fanout: server RSS idle \(format(idleMB)) MB, peak \(format(peakMB)) MB, 1 s after \(format(afterMB)) MB; CPU \(format(cpu, 2)) s over \(format(elapsed, 2)) s (\(format(100 * cpu / elapsed))% of one core); \(messages) messages delivered")
    print("RESULT fanout_subscribers=\(subscribers) fanout_complete=\(complete) fanout_idle_rss_mb=\(format(idleMB)) fanout_peak_rss_mb=\(format(peakMB)) fanout_after_rss_mb=\(format(afterMB)) fanout_cpu_s=\(format(cpu, 2)) fanout_seconds=\(format(elapsed, 2)) fanout_messages=\(messages) fanout_joined_live=\(live)")
}
