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
}
