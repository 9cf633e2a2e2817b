import Foundation

/// One entry of a job's append-only event log.
///
/// `data` is kept as the JSON text it was written with (for agent output, the stream-json
/// line verbatim), so storing and replaying events never re-encodes them.
public struct JobEvent: Sendable, Hashable, Codable {
    /// Dense, starting at 1 for each job.
    public var seq: Int64
    public var type: String
    public var data: String
    public var time: Date

    public init(seq: Int64, type: String, data: String, time: Date) {
        self.seq = seq
        self.type = type
        self.data = data
        self.time = time
    }
}

/// An event to append; the store assigns its sequence number and time.
public struct NewEvent: Sendable, Hashable {
    public var type: String
    /// Valid JSON text.
    public var data: String

    public init(type: String, data: String) {
        self.type = type
        self.data = data
    }

    /// What the event counts against its job's log size limit: the UTF-8 bytes of its type and data.
    public var byteCount: Int64 {
        Int64(type.utf8.count + data.utf8.count)
    }
}

/// What `JobStore.appendEvents(_:owner:_:byteLimit:)` did.
public struct EventAppend: Sendable, Hashable {
    /// The sequence number of the job's last event (unchanged when nothing was appended).
    public var lastSeq: Int64
    /// The job's log size after the append (see `NewEvent.byteCount`).
    public var logBytes: Int64
    /// How many events of the batch were refused because the log would have grown past its
    /// limit; they are always the batch's last ones.
    public var refused: Int

    public init(lastSeq: Int64, logBytes: Int64, refused: Int) {
        self.lastSeq = lastSeq
        self.logBytes = logBytes
        self.refused = refused
    }
}
