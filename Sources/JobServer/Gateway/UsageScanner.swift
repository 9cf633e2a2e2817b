import NIOCore
import Queue

/// Reads the token usage out of one upstream `/v1/messages` reply *while* it streams through
/// the gateway, so the budget follows a long stream as it goes and no byte waits for parsing.
///
/// - SSE (`text/event-stream`): lines are scanned as chunks pass; only `message_start`
///   (`message.usage`) and `message_delta` (`usage`) events are parsed. Anthropic reports
///   cumulative counts (a delta's `output_tokens` replaces the start's), so each field keeps
///   its latest value and only the growth since the last report is returned.
/// - JSON: a copy of the body (up to a cap) is parsed when it ends, for its `usage`.
///
/// Every `consume`/`finish` returns the tokens not returned before; the caller adds them to
/// the job's ``UsageMeter``. Malformed input yields no tokens; it never fails the reply.
struct UsageScanner {
    enum Format {
        case eventStream
        case json
    }

    private let format: Format
    private let maxJSONBytes: Int
    /// Longest SSE line kept; `message_start` lines are a few hundred bytes.
    private static let maxLineBytes = 1 << 20

    /// The model the current message names (`message_start`'s `message.model`, or the JSON
    /// reply's `model`), once seen.
    private(set) var model: String?

    // Current message: the latest reported value of each field and what was returned already.
    private var reported = TokenCounts()
    private var returned = TokenCounts()
    /// Growth not handed to the caller yet.
    private var unreturned = TokenCounts()

    // SSE parsing state.
    private var pendingLine: [UInt8] = []
    private var skippingLine = false
    private var eventName: String?
    private var data: [UInt8] = []

    // JSON copy.
    private var body: [UInt8] = []
    private var bodyOverflowed = false

    /// - Parameter contentType: the reply's `Content-Type`; `text/event-stream` selects SSE.
    init(contentType: String?, maxJSONBytes: Int) {
        let mediaType = contentType?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        format = mediaType == "text/event-stream" ? .eventStream : .json
        self.maxJSONBytes = maxJSONBytes
    }

    /// Scans the next chunk of the reply; returns the tokens it newly reported.
    mutating func consume(_ chunk: ByteBuffer) -> TokenCounts {
        switch format {
        case .json:
            if !bodyOverflowed {
                if body.count + chunk.readableBytes > maxJSONBytes {
                    bodyOverflowed = true
                    body = []
                } else {
                    body.append(contentsOf: chunk.readableBytesView)
                }
            }
        case .eventStream:
            var rest = chunk.readableBytesView[...]
            while let newline = rest.firstIndex(of: UInt8(ascii: "\n")) {
                appendToLine(rest[..<newline])
                if !skippingLine { handleLine() }
                pendingLine.removeAll(keepingCapacity: true)
                skippingLine = false
                rest = rest[rest.index(after: newline)...]
            }
            appendToLine(rest)
        }
        return takeUnreturned()
    }

    /// The reply ended: returns the tokens reported by whatever was still pending.
    mutating func finish() -> TokenCounts {
        switch format {
        case .json:
            if !bodyOverflowed, let reply = body.withUnsafeBufferPointer({ JSONValue.parse(bytes: $0) }),
               let usage = reply["usage"] {
                model = reply["model"]?.stringValue
                apply(usage)
            }
            body = []
        case .eventStream:
            if !skippingLine, !pendingLine.isEmpty { handleLine() }
            dispatch()
        }
        return takeUnreturned()
    }

    private mutating func takeUnreturned() -> TokenCounts {
        defer { unreturned = TokenCounts() }
        return unreturned
    }

    private mutating func appendToLine(_ bytes: ByteBufferView.SubSequence) {
        guard !skippingLine else { return }
        if pendingLine.count + bytes.count > Self.maxLineBytes {
            skippingLine = true
            pendingLine.removeAll()
        } else {
            pendingLine.append(contentsOf: bytes)
        }
    }

    private mutating func handleLine() {
        var line = pendingLine[...]
        if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
        if line.isEmpty {
            dispatch()
        } else if let value = Self.field("event", of: line) {
            eventName = String(decoding: value, as: UTF8.self)
        } else if let value = Self.field("data", of: line), eventName.map(Self.carriesUsage) ?? true {
            if !data.isEmpty { data.append(UInt8(ascii: "\n")) }
            if data.count + value.count <= Self.maxLineBytes { data.append(contentsOf: value) }
        }
    }

    /// Parses the event collected so far, if it is one that carries usage.
    private mutating func dispatch() {
        defer {
            eventName = nil
            data.removeAll(keepingCapacity: true)
        }
        guard !data.isEmpty, eventName.map(Self.carriesUsage) ?? true,
              let event = data.withUnsafeBufferPointer({ JSONValue.parse(bytes: $0) })
        else { return }
        switch event["type"]?.stringValue {
        case "message_start":
            // A new message: its counts start from zero.
            reported = TokenCounts()
            returned = TokenCounts()
            model = event["message"]?["model"]?.stringValue
            if let usage = event["message"]?["usage"] { apply(usage) }
        case "message_delta":
            if let usage = event["usage"] { apply(usage) }
        default:
            break
        }
    }

    /// Takes the fields present in a `usage` object as the message's latest counts.
    private mutating func apply(_ usage: JSONValue) {
        func latest(_ key: String, _ field: WritableKeyPath<TokenCounts, Int>) {
            if let value = usage[key]?.intValue, value >= 0 { reported[keyPath: field] = value }
        }
        latest("input_tokens", \.input)
        latest("output_tokens", \.output)
        latest("cache_creation_input_tokens", \.cacheCreation)
        latest("cache_read_input_tokens", \.cacheRead)
        let next = returned.max(reported)
        unreturned = unreturned.plus(next.minus(returned))
        returned = next
    }

    private static func carriesUsage(_ event: String) -> Bool {
        event == "message_start" || event == "message_delta"
    }

    /// The value of an SSE `name: value` line (one leading space removed), if it is that field.
    private static func field(_ name: String, of line: ArraySlice<UInt8>) -> ArraySlice<UInt8>? {
        let prefix = Array(name.utf8) + [UInt8(ascii: ":")]
        guard line.starts(with: prefix) else { return nil }
        var value = line.dropFirst(prefix.count)
        if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        return value
    }
}

extension TokenCounts {
    /// Field-wise maximum.
    func max(_ other: TokenCounts) -> TokenCounts {
        TokenCounts(
            input: Swift.max(input, other.input), output: Swift.max(output, other.output),
            cacheCreation: Swift.max(cacheCreation, other.cacheCreation), cacheRead: Swift.max(cacheRead, other.cacheRead)
        )
    }

    /// Field-wise sum.
    func plus(_ other: TokenCounts) -> TokenCounts {
        TokenCounts(
            input: input + other.input, output: output + other.output,
            cacheCreation: cacheCreation + other.cacheCreation, cacheRead: cacheRead + other.cacheRead
        )
    }

    /// Field-wise difference, never below zero.
    func minus(_ other: TokenCounts) -> TokenCounts {
        TokenCounts(
            input: Swift.max(0, input - other.input), output: Swift.max(0, output - other.output),
            cacheCreation: Swift.max(0, cacheCreation - other.cacheCreation),
            cacheRead: Swift.max(0, cacheRead - other.cacheRead)
        )
    }
}
