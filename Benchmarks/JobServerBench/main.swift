// jobserver-bench: load generator for a running `jobserver serve` (see scripts/bench.sh and
// docs/benchmarks.md).
//
//   jobserver-bench submit  --url U --token T --jobs N [--concurrency C]
//   jobserver-bench e2e     --url U --token T --jobs N [--concurrency C]
//   jobserver-bench latency --url U --token T --jobs N
//   jobserver-bench sandbox-job --jobs N     (starts its own scripted model, servers and workers)
//   jobserver-bench ws-latency --url U --token T --jobs EVENTS [--interval-us U]
//   jobserver-bench ws-fanout --url U --token T --jobs EVENTS --concurrency SUBSCRIBERS --server-pid P [--interval-us U] [--pad B]
//   jobserver-bench http-floor --port-file F   (a bare Hummingbird route; serves until SIGTERM)
//   jobserver-bench spawn-floor --agent PATH --jobs N [--concurrency C]
//
// Every subcommand prints human-readable lines and one final machine-readable line starting
// with `RESULT ` (space-separated key=value pairs) that scripts/bench.sh parses.
import AsyncHTTPClient
import Foundation
import NIOCore
import Queue

#if canImport(Glibc)
import Glibc
#endif

// MARK: - Command line

struct Options: Sendable {
    var command = ""
    var url = ""
    var token = ""
    var jobs = 1000
    var concurrency = 16
    var timeoutSeconds = 900.0
    /// Streaming benchmarks: microseconds between the agent's events, padding per event, and
    /// the server process to measure.
    var intervalMicroseconds = 2000
    var pad = 0
    var serverPID: Int32?
    /// `http-floor`: where to write the port. `spawn-floor`: the executable to start.
    var portFile = ""
    var agent = ""
}

func usage() -> Never {
    FileHandle.standardError.write(Data("""
    usage: jobserver-bench submit|e2e|latency|ws-latency|ws-fanout|sandbox-job|http-floor|spawn-floor --url URL --token TOKEN --jobs N [--concurrency C] [--timeout S]
           [--interval-us U] [--pad B] [--server-pid P] [--port-file F] [--agent PATH]

    """.utf8))
    exit(2)
}

func parseOptions() -> Options {
    var options = Options()
    var arguments = Array(CommandLine.arguments.dropFirst())
    guard !arguments.isEmpty else { usage() }
    options.command = arguments.removeFirst()
    while !arguments.isEmpty {
        let name = arguments.removeFirst()
        guard !arguments.isEmpty else { usage() }
        let value = arguments.removeFirst()
        switch name {
        case "--url": options.url = value.hasSuffix("/") ? String(value.dropLast()) : value
        case "--token": options.token = value
        case "--jobs": options.jobs = Int(value) ?? { usage() }()
        case "--concurrency": options.concurrency = Int(value) ?? { usage() }()
        case "--timeout": options.timeoutSeconds = Double(value) ?? { usage() }()
        case "--interval-us": options.intervalMicroseconds = Int(value) ?? { usage() }()
        case "--pad": options.pad = Int(value) ?? { usage() }()
        case "--server-pid": options.serverPID = Int32(value) ?? { usage() }()
        case "--port-file": options.portFile = value
        case "--agent": options.agent = value
        default: usage()
        }
    }
    let selfContained = ["sandbox-job", "http-floor", "spawn-floor"].contains(options.command)
    guard selfContained || (!options.url.isEmpty && !options.token.isEmpty), options.jobs > 0, options.concurrency > 0 else { usage() }
    return options
}

// MARK: - Helpers

func realtimeNanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
}

func format(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

struct Reply: Sendable {
    var status: Int
    var body: ByteBuffer
    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
    }
}

struct Client: Sendable {
    let http: HTTPClient
    let url: String
    let token: String
    static let submitBody = #"{"type":"generate","project":"p","prompt":"x"}"#

    func send(_ method: String, _ path: String, body: String? = nil) async throws -> Reply {
        var request = HTTPClientRequest(url: url + path)
        request.method = .init(rawValue: method)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await http.execute(request, timeout: .seconds(60))
        let collected = try await response.body.collect(upTo: 64 << 20)
        return Reply(status: Int(response.status.code), body: collected)
    }

    /// POST /v1/jobs; returns the status and, on 202, the job id.
    func submit() async throws -> (status: Int, id: String?) {
        let reply = try await send("POST", "/v1/jobs", body: Self.submitBody)
        return (reply.status, reply.status == 202 ? reply.json?["id"] as? String : nil)
    }
}

let iso8601: @Sendable (String) -> Double? = { text in
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return formatter.date(from: text)?.timeIntervalSince1970
}

// MARK: - submit

struct SubmitOutcome: Sendable {
    var ids: [String?]
    var statuses: [Int: Int]
    var transportErrors: Int
    var firstSendNs: Int64
    var elapsed: Duration
}

/// Sends `jobs` submissions from `concurrency` concurrent clients (client k sends jobs k, k+C, …).
func submitAll(_ client: Client, jobs: Int, concurrency: Int) async -> SubmitOutcome {
    let clock = ContinuousClock()
    let firstSendNs = realtimeNanoseconds()
    let start = clock.now
    let results = await withTaskGroup(of: [(Int, Int, String?)].self) { group in
        for lane in 0..<min(concurrency, jobs) {
            group.addTask {
                var mine: [(Int, Int, String?)] = []
                var index = lane
                while index < jobs {
                    do {
                        let (status, id) = try await client.submit()
                        mine.append((index, status, id))
                    } catch {
                        mine.append((index, -1, nil))
                    }
                    index += concurrency
                }
                return mine
            }
        }
        var all: [(Int, Int, String?)] = []
        for await part in group { all += part }
        return all
    }
    let elapsed = clock.now - start
    var ids = [String?](repeating: nil, count: jobs)
    var statuses: [Int: Int] = [:]
    var transportErrors = 0
    for (index, status, id) in results {
        ids[index] = id
        if status < 0 { transportErrors += 1 } else { statuses[status, default: 0] += 1 }
    }
    return SubmitOutcome(ids: ids, statuses: statuses, transportErrors: transportErrors,
                         firstSendNs: firstSendNs, elapsed: elapsed)
}

func describe(_ statuses: [Int: Int]) -> String {
    statuses.keys.sorted().map { "\($0)x\(statuses[$0]!)" }.joined(separator: ",")
}

func runSubmit(_ client: Client, _ options: Options) async {
    let outcome = await submitAll(client, jobs: options.jobs, concurrency: options.concurrency)
    let rate = Double(options.jobs) / seconds(outcome.elapsed)
    let accepted = outcome.statuses[202] ?? 0
    print("submit: \(options.jobs) jobs, \(options.concurrency) concurrent clients, \(format(seconds(outcome.elapsed), 3)) s")
    print("submit: \(format(rate)) jobs/s; \(accepted) answered 202; statuses \(describe(outcome.statuses)); transport errors \(outcome.transportErrors)")
    print("RESULT submit_jobs_per_s=\(format(rate)) jobs=\(options.jobs) accepted=\(accepted) transport_errors=\(outcome.transportErrors) seconds=\(format(seconds(outcome.elapsed), 3)) statuses=\(describe(outcome.statuses))")
}

// MARK: - e2e

func runE2E(_ client: Client, _ options: Options) async throws {
    let clock = ContinuousClock()
    let start = clock.now
    let outcome = await submitAll(client, jobs: options.jobs, concurrency: options.concurrency)
    let submitted = seconds(outcome.elapsed)
    let ids = outcome.ids.compactMap { $0 }
    print("e2e: submitted \(ids.count)/\(options.jobs) in \(format(submitted, 3)) s (statuses \(describe(outcome.statuses)), transport errors \(outcome.transportErrors))")

    // Jobs are claimed FIFO, so they finish roughly in submission order: walk them in order
    // with one GET each, sleeping briefly only while the next one is still unfinished.
    var index = 0
    var succeeded = 0
    var failed: [String: Int] = [:]
    var lastFinished = 0.0
    var requests = 0
    let deadline = clock.now + .seconds(options.timeoutSeconds)
    while index < ids.count {
        if clock.now > deadline {
            print("e2e: TIMEOUT with \(ids.count - index) jobs unfinished (first: \(ids[index]))")
            break
        }
        let reply: Reply
        do { reply = try await client.send("GET", "/v1/jobs/\(ids[index])") } catch {
            failed["transport", default: 0] += 1
            try await Task.sleep(for: .milliseconds(5))
            continue
        }
        requests += 1
        let job = reply.json
        let status = job?["status"] as? String ?? "http\(reply.status)"
        switch status {
        case "succeeded", "failed", "cancelled":
            if status == "succeeded" {
                succeeded += 1
            } else {
                let code = (job?["error"] as? [String: Any])?["code"] as? String ?? "?"
                failed["\(status):\(code)", default: 0] += 1
            }
            if let text = job?["finished_at"] as? String, let finished = iso8601(text) {
                lastFinished = max(lastFinished, finished)
            }
            index += 1
        default:
            try await Task.sleep(for: .milliseconds(5))
        }
    }
    let observed = seconds(clock.now - start)
    let firstSend = Double(outcome.firstSendNs) / 1e9
    let byFinishedAt = lastFinished > firstSend ? lastFinished - firstSend : observed
    let rate = Double(succeeded) / byFinishedAt
    let observedRate = Double(succeeded) / observed
    let failures = failed.keys.sorted().map { "\($0)x\(failed[$0]!)" }.joined(separator: ",")
    print("e2e: \(succeeded) succeeded, failures [\(failures)], \(requests) status GETs")
    print("e2e: first submit → last finished_at \(format(byFinishedAt, 3)) s = \(format(rate)) jobs/s (as observed by polling: \(format(observed, 3)) s = \(format(observedRate)) jobs/s)")
    print("RESULT e2e_jobs_per_s=\(format(rate)) e2e_observed_jobs_per_s=\(format(observedRate)) jobs=\(options.jobs) succeeded=\(succeeded) seconds=\(format(byFinishedAt, 3)) submit_seconds=\(format(submitted, 3)) failures=\(failures.isEmpty ? "none" : failures)")
}

// MARK: - latency

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    // nearest-rank
    let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
    return sorted[max(0, min(sorted.count - 1, rank - 1))]
}

func runLatency(_ client: Client, _ options: Options) async throws {
    var samples: [Double] = []
    // The same, up to the agent's `main` (after its C library's start-up), when it reports it.
    var mainSamples: [Double] = []
    var failures = 0
    for _ in 0..<options.jobs {
        let sentNs = realtimeNanoseconds()
        let (status, maybeID) = try await client.submit()
        guard status == 202, let id = maybeID else {
            print("latency: submit answered \(status)")
            failures += 1
            continue
        }
        // Wait for the job to finish (polling does not affect the figure: the start time comes
        // from the agent itself), then read its events for the init line.
        let deadline = ContinuousClock.now + .seconds(60)
        var final = ""
        while ContinuousClock.now < deadline {
            let job = try await client.send("GET", "/v1/jobs/\(id)").json
            let s = job?["status"] as? String ?? ""
            if ["succeeded", "failed", "cancelled"].contains(s) { final = s; break }
            try await Task.sleep(for: .milliseconds(2))
        }
        guard final == "succeeded" else {
            print("latency: job \(id) ended '\(final.isEmpty ? "unfinished" : final)'")
            failures += 1
            continue
        }
        let events = try await client.send("GET", "/v1/jobs/\(id)/events?after=0").json?["events"] as? [[String: Any]] ?? []
        let initData = events.lazy.compactMap { event -> [String: Any]? in
            guard let data = event["data"] as? [String: Any], data["type"] as? String == "system" else { return nil }
            return data
        }.first
        guard let started = (initData?["started_at_ns"] as? NSNumber)?.int64Value else {
            print("latency: job \(id) has no init event with started_at_ns")
            failures += 1
            continue
        }
        samples.append(Double(started - sentNs) / 1e6)
        if let inMain = (initData?["main_at_ns"] as? NSNumber)?.int64Value {
            mainSamples.append(Double(inMain - sentNs) / 1e6)
        }
    }
    guard !samples.isEmpty else {
        print("RESULT latency_samples=0 failures=\(failures)")
        return
    }
    let sorted = samples.sorted()
    let mean = samples.reduce(0, +) / Double(samples.count)
    let p50 = percentile(sorted, 50), p90 = percentile(sorted, 90), p99 = percentile(sorted, 99)
    print("latency: \(samples.count) jobs (\(failures) failed): submit → agent process start (its entry point), ms")
    print("latency: p50 \(format(p50, 2))  p90 \(format(p90, 2))  p99 \(format(p99, 2))  min \(format(sorted.first!, 2))  max \(format(sorted.last!, 2))  mean \(format(mean, 2))")
    var mainFields = ""
    if !mainSamples.isEmpty {
        let sortedMain = mainSamples.sorted()
        let main50 = percentile(sortedMain, 50), main99 = percentile(sortedMain, 99)
        print("latency: submit → the agent's main (after its C library's start-up), ms: p50 \(format(main50, 2))  p99 \(format(main99, 2))")
        mainFields = " latency_main_p50_ms=\(format(main50, 2)) latency_main_p99_ms=\(format(main99, 2))"
    }
    print("RESULT latency_p50_ms=\(format(p50, 2)) latency_p90_ms=\(format(p90, 2)) latency_p99_ms=\(format(p99, 2)) latency_min_ms=\(format(sorted.first!, 2)) latency_max_ms=\(format(sorted.last!, 2)) latency_mean_ms=\(format(mean, 2))\(mainFields) samples=\(samples.count) failures=\(failures)")
}

// MARK: - main

let options = parseOptions()
var configuration = HTTPClient.Configuration()
configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(options.concurrency, 8)
let http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
let client = Client(http: http, url: options.url, token: options.token)
var exitCode: Int32 = 0
do {
    switch options.command {
    case "submit": await runSubmit(client, options)
    case "e2e": try await runE2E(client, options)
    case "latency": try await runLatency(client, options)
    case "sandbox-job": try await runSandboxJob(jobs: options.jobs)
    case "ws-latency": try await runWebSocketLatency(client, options)
    case "ws-fanout": try await runWebSocketFanout(client, options)
    case "http-floor": try await runHTTPFloor(portFile: options.portFile)
    case "spawn-floor": try runSpawnFloor(agent: options.agent, jobs: options.jobs, concurrency: options.concurrency)
    default: usage()
    }
} catch {
    print("jobserver-bench: \(error)")
    exitCode = 1
}
try? await http.shutdown()
exit(exitCode)
