/// Limits and timings of the live streams (WebSocket and SSE), for one server process.
///
/// Every limit bounds what a single connection can make the server hold, so a slow, idle or
/// hostile client costs at most its queue and is then closed with a documented code
/// (`docs/streaming.md`); the client resumes by sequence number.
public struct StreamingConfiguration: Sendable, Hashable {
    /// Messages a connection may have queued for its socket before it is closed as a slow
    /// consumer (`4008`). Catch-up (replay) waits for room instead; only live events overflow.
    public var queueMessages: Int
    /// Bytes a connection may have queued for its socket before it is closed as a slow
    /// consumer. A single message larger than this is still sent when the queue is empty.
    public var queueBytes: Int
    /// Interval of WebSocket pings; a peer that has not answered the previous ping by the next
    /// one is closed (`1001`). SSE streams send a comment line at the same interval.
    public var heartbeat: Duration
    /// A `/v1/stream` socket that follows no job and sends nothing for this long is closed
    /// (`4001`).
    public var idleTimeout: Duration
    /// How long a closing connection may take to get its close frame (or last SSE event)
    /// through before the server drops the TCP connection.
    public var closeTimeout: Duration
    /// Largest message a client may send, and the size outbound messages are fragmented into.
    public var maxFrameBytes: Int
    /// Jobs one `/v1/stream` socket may follow at once.
    public var maxJobsPerSocket: Int
    /// Events kept in memory per followed job and process, shared by all its subscribers
    /// (older ones are read from the store).
    public var cacheEvents: Int
    /// Bytes of encoded events kept in memory per followed job and process.
    public var cacheBytes: Int
    /// Events read from the store at a time.
    public var pageSize: Int
    /// The kernel send buffer (`SO_SNDBUF`) of each stream connection; `nil` leaves the
    /// kernel's autotuning, which lets one stalled connection hold up to `net.ipv4.tcp_wmem`'s
    /// maximum (4 MiB here). A small value bounds kernel memory per subscriber as the queue
    /// bounds ours, and lets a stalled client be detected sooner; it also caps a connection's
    /// throughput (with 16 KiB, replaying 12 MB took several seconds in a test here).
    public var socketSendBufferBytes: Int?

    public init(
        queueMessages: Int = 4096, queueBytes: Int = 8 << 20, heartbeat: Duration = .seconds(20),
        idleTimeout: Duration = .seconds(300), closeTimeout: Duration = .seconds(10),
        maxFrameBytes: Int = 1 << 20, maxJobsPerSocket: Int = 32, cacheEvents: Int = 4096,
        cacheBytes: Int = 8 << 20, pageSize: Int = 512, socketSendBufferBytes: Int? = nil
    ) {
        self.queueMessages = queueMessages
        self.queueBytes = queueBytes
        self.heartbeat = heartbeat
        self.idleTimeout = idleTimeout
        self.closeTimeout = closeTimeout
        self.maxFrameBytes = maxFrameBytes
        self.maxJobsPerSocket = maxJobsPerSocket
        self.cacheEvents = cacheEvents
        self.cacheBytes = cacheBytes
        self.pageSize = pageSize
        self.socketSendBufferBytes = socketSendBufferBytes
    }
}
