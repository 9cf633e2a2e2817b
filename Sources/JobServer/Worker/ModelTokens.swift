import Queue

/// Token counts of model responses, as the Messages API reports them in `usage`.
public struct ModelTokens: Sendable, Hashable {
    public var input: Int64 = 0
    public var output: Int64 = 0
    public var cacheCreation: Int64 = 0
    public var cacheRead: Int64 = 0

    public init(input: Int64 = 0, output: Int64 = 0, cacheCreation: Int64 = 0, cacheRead: Int64 = 0) {
        self.input = input
        self.output = output
        self.cacheCreation = cacheCreation
        self.cacheRead = cacheRead
    }

    /// Reads a `usage` object (`input_tokens`, `output_tokens`, `cache_creation_input_tokens`,
    /// `cache_read_input_tokens`); `nil` when it has none of them.
    public init?(usage: JSONValue?) {
        guard let usage, usage.objectValue != nil else { return nil }
        func count(_ key: String) -> Int64 { Int64(max(0, usage[key]?.doubleValue ?? 0)) }
        self.init(input: count("input_tokens"), output: count("output_tokens"),
                  cacheCreation: count("cache_creation_input_tokens"), cacheRead: count("cache_read_input_tokens"))
    }

    /// What budgets charge: input + output + cache creation (cache reads are not charged,
    /// as in the model gateway's per-job budget).
    public var budgeted: Int64 { input + output + cacheCreation }

    public static func + (lhs: ModelTokens, rhs: ModelTokens) -> ModelTokens {
        ModelTokens(input: lhs.input + rhs.input, output: lhs.output + rhs.output,
                    cacheCreation: lhs.cacheCreation + rhs.cacheCreation, cacheRead: lhs.cacheRead + rhs.cacheRead)
    }
}
