/// The failure a job ends with, as stored and as returned in the job's `error` field.
public struct JobError: Error, Sendable, Hashable, Codable {
    public var code: ErrorCode
    public var message: String
    public var details: JSONValue?

    public init(_ code: ErrorCode, _ message: String, details: JSONValue? = nil) {
        self.code = code
        self.message = message
        self.details = details
    }
}
