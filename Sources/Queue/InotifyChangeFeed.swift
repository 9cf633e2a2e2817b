import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A `ChangeFeed` shared by every process on the host, built on Linux inotify.
///
/// Each channel is a file in one directory (`queue`, `cancel`, `accounts`, `events-<job id>`). `notify`
/// writes one byte to the channel's file, which makes the kernel deliver `IN_MODIFY` to every
/// process watching the directory — including this one. Each process runs one reader thread
/// blocked in `poll()` on its inotify descriptor; on an event it bumps the channel's
/// generation and resumes the tasks waiting on it. A notification costs one open/pwrite/close
/// (about 10 µs) and needs no database round trip, so a worker wakes well under a millisecond
/// after a submission commits.
///
/// Generations come from one process-wide counter: a channel's generation is the counter value
/// at its last event. That lets the feed forget channels nobody waits on (it would otherwise
/// keep one entry per job ever streamed) without ever missing a wake-up: a forgotten channel
/// reports the counter value at the time it was forgotten, which is at least any generation
/// handed out for it before, and any later event moves it higher still.
public final class InotifyChangeFeed: ChangeFeed {
    /// The directory holding the channel files.
    public let directory: String
    private let state = Mutex(State())

    /// Creates the directory if needed. The reader thread starts on first use (or `start()`).
    /// - Throws: `StoreError.unavailable` when the directory cannot be created.
    public init(directory: String) throws {
        self.directory = directory
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StoreError.unavailable("creating notification directory \(directory): \(error)")
        }
    }

    deinit {
        state.withLock { $0.reader }?.signalStop()
    }

    /// Starts the reader thread now rather than on first use, reporting why it cannot run.
    public func start() throws(SystemCallError) {
        try state.withLock { state throws(SystemCallError) in try startIfNeeded(&state) }
    }

    /// Stops the reader thread. Pending waits then end at their timeout; a later `generation`
    /// or `wait` starts a new reader.
    public func shutdown() {
        let reader = state.withLock { state in
            defer { state.reader = nil }
            return state.reader
        }
        reader?.signalStop()
    }

    public func generation(of channel: ChangeChannel) -> UInt64 {
        state.withLock { state in
            try? startIfNeeded(&state)
            return state.generation(of: channel.fileName)
        }
    }

    @discardableResult
    public func wait(for channel: ChangeChannel, after generation: UInt64, timeout: Duration) async -> Bool {
        let name = channel.fileName
        let moved = state.withLock { state in
            try? startIfNeeded(&state)
            return state.generation(of: name) > generation
        }
        if moved { return true }
        guard timeout > .zero, !Task.isCancelled else { return false }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.suspend(on: name, after: generation) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    public func notify(_ channel: ChangeChannel) {
        let path = directory + "/" + channel.fileName
        var attempt = 0
        while true {
            do {
                let fd = try SystemCall.retrying("open(\(path))") {
                    open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0o644)
                }
                defer { _ = close(fd) }
                var byte: UInt8 = 1
                _ = try SystemCall.retrying("pwrite(\(path))") { pwrite(fd, &byte, 1, 0) }
                return
            } catch {
                // The directory was removed under us: recreate it once, else give up (waiters
                // fall back to their timeouts; a notification is only a hint).
                attempt += 1
                guard error.errno == ENOENT, attempt == 1,
                      (try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)) != nil
                else { return }
            }
        }
    }

    public func retire(_ channel: ChangeChannel) {
        notify(channel)
        _ = unlink(directory + "/" + channel.fileName)
    }

    // MARK: - Waiting

    /// Suspends until the channel moves past `generation` (true) or the task is cancelled (false).
    private func suspend(on name: String, after generation: UInt64) async -> Bool {
        let id = state.withLock { state in
            state.nextWaiterID += 1
            return state.nextWaiterID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
                let immediate: Bool? = state.withLock { state in
                    if state.generation(of: name) > generation { return true }
                    // Checked under the lock that `onCancel` takes, so a cancellation either
                    // finds the waiter registered or is seen here: never both, never neither.
                    if Task.isCancelled { return false }
                    state.waiters[name, default: [:]][id] = Waiter(after: generation, continuation: continuation)
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state in state.removeWaiter(name: name, id: id) }
            waiter?.continuation.resume(returning: false)
        }
    }

    // MARK: - Reader

    private func startIfNeeded(_ state: inout State) throws(SystemCallError) {
        guard state.reader == nil else { return }
        let inotifyFD = try SystemCall.retrying("inotify_init1") { inotify_init1(Int32(IN_CLOEXEC | IN_NONBLOCK)) }
        do throws(SystemCallError) {
            _ = try SystemCall.retrying("inotify_add_watch(\(directory))") {
                inotify_add_watch(inotifyFD, directory, UInt32(IN_MODIFY))
            }
        } catch {
            _ = close(inotifyFD)
            throw error
        }
        var pipeFDs: [Int32] = [-1, -1]
        do throws(SystemCallError) {
            // (pipe2 is not exported to Swift; another thread's fork may briefly inherit these.)
            _ = try SystemCall.retrying("pipe") { pipe(&pipeFDs) }
            for fd in pipeFDs {
                _ = try SystemCall.retrying("fcntl(F_SETFD)") { fcntl(fd, F_SETFD, FD_CLOEXEC) }
                _ = try SystemCall.retrying("fcntl(F_SETFL)") { fcntl(fd, F_SETFL, O_NONBLOCK) }
            }
        } catch {
            _ = close(inotifyFD)
            for fd in pipeFDs where fd >= 0 { _ = close(fd) }
            throw error
        }
        let reader = ReaderHandle(inotifyFD: inotifyFD, wakeRead: pipeFDs[0], wakeWrite: pipeFDs[1])
        state.reader = reader
        let thread = Thread { [weak self] in
            Self.readLoop(reader) { names, overflow in
                guard let self else { return false }
                self.deliver(names, overflow: overflow, from: reader)
                return true
            }
            self?.readerEnded(reader)
        }
        thread.name = "queue-change-feed"
        thread.start()
    }

    /// Blocks in `poll()` until stopped, handing the channel names of each batch of events to
    /// `deliver` (which returns `false` once the feed is gone).
    private static func readLoop(_ reader: ReaderHandle, deliver: (Set<String>, Bool) -> Bool) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 8)
        defer { buffer.deallocate() }
        var fds = [
            pollfd(fd: reader.inotifyFD, events: Int16(POLLIN), revents: 0),
            pollfd(fd: reader.wakeRead, events: Int16(POLLIN), revents: 0),
        ]
        while true {
            fds[0].revents = 0
            fds[1].revents = 0
            guard (try? SystemCall.retrying("poll") { poll(&fds, nfds_t(fds.count), -1) }) != nil else { return }
            if fds[1].revents != 0 { return }
            guard fds[0].revents != 0 else { continue }
            var names = Set<String>()
            var overflow = false
            while let count = (try? SystemCall.retryingUnlessWouldBlock("read(inotify)") {
                read(reader.inotifyFD, buffer.baseAddress, buffer.count)
            }) ?? nil, count > 0 {
                overflow = parseEvents(UnsafeRawBufferPointer(rebasing: buffer[..<count]), into: &names) || overflow
            }
            guard deliver(names, overflow) else { return }
        }
    }

    /// Decodes `struct inotify_event` records; returns whether the kernel queue overflowed.
    private static func parseEvents(_ bytes: UnsafeRawBufferPointer, into names: inout Set<String>) -> Bool {
        var overflow = false
        var offset = 0
        let header = 16  // wd, mask, cookie, len
        while offset + header <= bytes.count {
            let mask = bytes.loadUnaligned(fromByteOffset: offset + 4, as: UInt32.self)
            let length = Int(bytes.loadUnaligned(fromByteOffset: offset + 12, as: UInt32.self))
            if mask & UInt32(IN_Q_OVERFLOW) != 0 { overflow = true }
            let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[(offset + header)..<min(bytes.count, offset + header + length)])
            let end = nameBytes.firstIndex(of: 0) ?? nameBytes.count  // names are NUL-padded
            if end > 0 {
                names.insert(String(decoding: UnsafeRawBufferPointer(rebasing: nameBytes[..<end]), as: UTF8.self))
            }
            offset += header + length
        }
        return overflow
    }

    private func deliver(_ names: Set<String>, overflow: Bool, from reader: ReaderHandle) {
        let ready = state.withLock { state in state.advance(names, everything: overflow) }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }

    /// The reader stopped (shutdown or a failing descriptor): if it was still the current
    /// reader, forget it so the next use starts a fresh one, and wake everyone to re-check.
    private func readerEnded(_ reader: ReaderHandle) {
        let ready: [Waiter] = state.withLock { state in
            guard state.reader === reader else { return [] }
            state.reader = nil
            return state.advance([], everything: true)
        }
        for waiter in ready { waiter.continuation.resume(returning: true) }
    }
}

extension InotifyChangeFeed {
    private struct Waiter {
        var after: UInt64
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        /// Channel name → counter value at its last event.
        var generations: [String: UInt64] = [:]
        /// The generation of channels not in `generations` (see the type's documentation).
        var floor: UInt64 = 0
        var counter: UInt64 = 0
        var waiters: [String: [UInt64: Waiter]] = [:]
        var nextWaiterID: UInt64 = 0
        var reader: ReaderHandle?

        static let retainedChannels = 4096

        func generation(of name: String) -> UInt64 {
            generations[name] ?? floor
        }

        mutating func removeWaiter(name: String, id: UInt64) -> Waiter? {
            guard let waiter = waiters[name]?.removeValue(forKey: id) else { return nil }
            if waiters[name]?.isEmpty == true { waiters[name] = nil }
            return waiter
        }

        /// Records events on `names` (or on every channel) and returns the waiters to resume.
        mutating func advance(_ names: Set<String>, everything: Bool) -> [Waiter] {
            counter += 1
            if everything {
                for name in generations.keys { generations[name] = counter }
                for name in waiters.keys { generations[name] = counter }
                floor = counter
            }
            for name in names { generations[name] = counter }
            var ready: [Waiter] = []
            for name in everything ? Array(waiters.keys) : Array(names) {
                guard let waiting = waiters[name] else { continue }
                for (id, waiter) in waiting where waiter.after < counter {
                    ready.append(waiter)
                    waiters[name]?[id] = nil
                }
                if waiters[name]?.isEmpty == true { waiters[name] = nil }
            }
            if generations.count > Self.retainedChannels { forgetIdleChannels() }
            return ready
        }

        private mutating func forgetIdleChannels() {
            floor = counter
            generations = generations.filter { waiters[$0.key] != nil }
        }
    }

    /// The reader's descriptors, closed when both the feed and the reader thread let go.
    private final class ReaderHandle: Sendable {
        let inotifyFD: Int32
        /// A pipe whose read end the reader polls next to inotify, to be told to stop.
        let wakeRead: Int32
        let wakeWrite: Int32

        init(inotifyFD: Int32, wakeRead: Int32, wakeWrite: Int32) {
            self.inotifyFD = inotifyFD
            self.wakeRead = wakeRead
            self.wakeWrite = wakeWrite
        }

        func signalStop() {
            var one: UInt8 = 1
            _ = try? SystemCall.retryingUnlessWouldBlock("write(pipe)") { write(wakeWrite, &one, 1) }
        }

        deinit {
            _ = close(inotifyFD)
            _ = close(wakeRead)
            _ = close(wakeWrite)
        }
    }
}

extension ChangeChannel {
    /// The channel's file in the notification directory.
    var fileName: String {
        switch self {
        case .queue: "queue"
        case .cancel: "cancel"
        case .events(let id): "events-\(id.rawValue)"
        case .accounts: "accounts"
        }
    }
}
