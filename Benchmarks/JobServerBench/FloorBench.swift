// Ceilings of this machine that bound the service's figures (docs/benchmarks.md): what the HTTP
// framework alone answers, and how fast processes can be started at all.
import Foundation
import Hummingbird
import Logging
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// `http-floor`: a bare Hummingbird server with the service's submission route shape (POST
/// /v1/jobs, a small JSON body read, a 202 with a job-sized JSON answer) and nothing behind
/// it: no authentication, no validation, no store. Load it with the same client as the
/// service; its rate is the most any HTTP submission path in this framework reaches here.
/// Writes its port to `portFile` and serves until SIGTERM.
func runHTTPFloor(portFile: String) async throws {
    let answer = ByteBuffer(string: #"{"id":"job_01kaaaaaaaaaaaaaaaaaaaaaaa","status":"queued","type":"generate","project":"p","created_at":"2026-11-24T00:00:00.000Z","attempt":1,"max_attempts":3,"priority":0}"#)
    let router = Router()
    router.post("v1/jobs") { request, _ -> Response in
        let body = try await request.body.collect(upTo: 1 << 20)
        guard body.readableBytes > 0 else { return Response(status: .badRequest) }
        return Response(status: .accepted, headers: [.contentType: "application/json"], body: .init(byteBuffer: answer))
    }
    var logger = Logger(label: "http-floor")
    logger.logLevel = .warning
    let app = Application(
        router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
        onServerRunning: { channel in
            let port = channel.localAddress?.port ?? 0
            try? Data("\(port)\n".utf8).write(to: URL(fileURLWithPath: portFile))
        },
        logger: logger)
    try await app.runService()
}

/// `spawn-floor`: starts the no-op agent `jobs` times from `concurrency` threads, each start a
/// `posix_spawn` with its stdout on a pipe read to the end, then `waitpid`: the most agent
/// processes per second this machine runs before any queue, store or worker is involved.
func runSpawnFloor(agent: String, jobs: Int, concurrency: Int) throws {
    let lanes = max(1, min(concurrency, jobs))
    let failures = ManagedCounter()
    let start = ContinuousClock.now
    DispatchQueue.concurrentPerform(iterations: lanes) { lane in
        var index = lane
        while index < jobs {
            if !spawnAndWait(agent) { failures.increment() }
            index += lanes
        }
    }
    let elapsed = seconds(ContinuousClock.now - start)
    let rate = Double(jobs) / elapsed
    print("spawn-floor: \(jobs) starts of \(agent) from \(lanes) threads in \(format(elapsed, 3)) s = \(format(rate)) processes/s; \(failures.value) failed")
    print("RESULT spawn_per_s=\(format(rate)) jobs=\(jobs) concurrency=\(lanes) failures=\(failures.value)")
}

/// One start of `path` with a prompt argument, its stdout read to EOF; true when it exited 0.
private func spawnAndWait(_ path: String) -> Bool {
    var fds: [Int32] = [0, 0]
    // The pipe is made close-on-exec before any other thread may start a child (no `pipe2`
    // here), so no child inherits another start's pipe and holds its end open.
    let made = spawnGate.exclusively {
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }
    guard made else { return false }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
    let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), strdup("-p"), strdup("spawn floor"), nil]
    defer { argv.forEach { free($0) } }
    var pid: pid_t = 0
    let spawned = spawnGate.shared { posix_spawn(&pid, path, &actions, nil, argv, environ) }
    close(fds[1])
    defer { close(fds[0]) }
    guard spawned == 0 else { return false }
    var buffer = [UInt8](repeating: 0, count: 4096)
    while true {
        let count = read(fds[0], &buffer, buffer.count)
        if count > 0 { continue }
        if count < 0, errno == EINTR { continue }
        break
    }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 {
        guard errno == EINTR else { return false }
    }
    return status == 0
}

/// Starts share it; making a pipe excludes them (see `spawnAndWait`).
private let spawnGate = ReadWriteLock()

private final class ReadWriteLock: @unchecked Sendable {
    /// Heap-allocated: a pthread lock must not move.
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    init() {
        lock.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(lock, nil)
    }
    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }
    func shared<T>(_ body: () -> T) -> T {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return body()
    }
    func exclusively<T>(_ body: () -> T) -> T {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return body()
    }
}

/// A counter shared by `concurrentPerform`'s threads.
private final class ManagedCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    var value: Int { lock.withLock { count } }
    func increment() { lock.withLock { count += 1 } }
}
