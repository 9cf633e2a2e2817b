import Queue
import Synchronization

/// The process's registry of followed jobs: every stream of the same job in this server
/// process shares one `JobEventTail`, which lives exactly as long as someone follows the job.
public final class JobEventHub: Sendable {
    private let store: any JobStore
    let configuration: StreamingConfiguration
    private let tails = Mutex<[JobID: Entry]>([:])

    private struct Entry {
        var tail: JobEventTail
        var users: Int
    }

    public init(store: any JobStore, configuration: StreamingConfiguration = StreamingConfiguration()) {
        self.store = store
        self.configuration = configuration
    }

    /// Runs `body` with the job's shared tail, creating it if needed and dropping it when the
    /// last user leaves (on every path out of `body`).
    func withTail<T: Sendable>(of id: JobID, _ body: (JobEventTail) async throws -> T) async rethrows -> T {
        let tail = tails.withLock { tails in
            if let entry = tails[id] {
                tails[id]?.users += 1
                return entry.tail
            }
            let tail = JobEventTail(jobID: id, store: store, configuration: configuration)
            tails[id] = Entry(tail: tail, users: 1)
            return tail
        }
        defer {
            tails.withLock { tails in
                guard let users = tails[id]?.users else { return }
                if users <= 1 { tails[id] = nil } else { tails[id]?.users = users - 1 }
            }
        }
        return try await body(tail)
    }

    /// Jobs followed right now in this process (for `/metrics`).
    public var followedJobs: Int { tails.withLock { $0.count } }
}
