import Foundation
import Queue

/// A scripted conversation the ``ScriptedModelServer`` plays back to a real Claude Code CLI.
///
/// Scripts are stateless on purpose: the turn to play is derived from the request itself
/// (the number of `assistant` messages it already carries), so any number of concurrent
/// CLI runs can share one server and one script. A job selects its script by putting the
/// marker ``marker(_:)`` (`[[script:NAME]]`) anywhere in its prompt.
///
/// ```swift
/// let script: ModelScript = [
///     .toolUse([.write(path: "{{cwd}}/hello.txt", content: "hi\n")]),
///     .text("Wrote it."),
/// ]
/// ```
/// Requests past the last turn are answered with ``finalText`` (`"done"`), so a CLI that
/// keeps going always terminates.
public struct ModelScript: Sendable, ExpressibleByArrayLiteral {
    /// The turns, in order; turn `n` answers the request that carries `n` assistant messages.
    public var turns: [ModelTurn]
    /// The text answered once the script has run out of turns.
    public var finalText: String

    /// Creates a script from its turns.
    public init(_ turns: [ModelTurn], finalText: String = "done") {
        self.turns = turns
        self.finalText = finalText
    }

    public init(arrayLiteral elements: ModelTurn...) {
        self.init(elements)
    }

    /// The turn for a request that already carries `index` assistant messages.
    public func turn(at index: Int) -> ModelTurn {
        guard index >= 0, index < turns.count else { return .text(finalText) }
        return turns[index]
    }

    /// The prompt marker that selects the script registered under `name`.
    public static func marker(_ name: String) -> String { "[[script:\(name)]]" }

    /// The script used when a request carries no (or an unknown) marker: one text turn `"OK"`.
    public static let fallback: ModelScript = [.text("OK")]
}

/// Token counts reported for one scripted turn (in `message_start`/`message_delta` or the JSON body).
public struct ModelUsage: Sendable, Hashable {
    /// Reported `input_tokens`.
    public var inputTokens: Int
    /// Reported `output_tokens`.
    public var outputTokens: Int
    /// Reported `cache_creation_input_tokens` (left out of the reply when 0).
    public var cacheCreationInputTokens: Int
    /// Reported `cache_read_input_tokens` (left out of the reply when 0).
    public var cacheReadInputTokens: Int

    /// Creates usage counts; the defaults are what every turn reports unless told otherwise.
    public init(inputTokens: Int = 100, outputTokens: Int = 20, cacheCreationInputTokens: Int = 0, cacheReadInputTokens: Int = 0) {
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.cacheCreationInputTokens = cacheCreationInputTokens
        self.cacheReadInputTokens = cacheReadInputTokens
    }

    /// The `usage` object of a message (or of `message_start`).
    var json: JSONValue {
        var fields: [String: JSONValue] = [
            "input_tokens": .number(Double(inputTokens)),
            "output_tokens": .number(Double(outputTokens)),
        ]
        if cacheCreationInputTokens > 0 {
            fields["cache_creation_input_tokens"] = .number(Double(cacheCreationInputTokens))
        }
        if cacheReadInputTokens > 0 {
            fields["cache_read_input_tokens"] = .number(Double(cacheReadInputTokens))
        }
        return .object(fields)
    }
}

/// One tool call the scripted model asks the CLI to run.
///
/// String values anywhere in ``input`` may contain `{{cwd}}`, replaced per request by the
/// job's working directory (parsed from the CLI's "Primary working directory: X" line),
/// because the CLI's file tools require absolute paths and every job has its own cwd.
public struct ToolCall: Sendable, Hashable {
    /// Tool name as the CLI knows it (`Write`, `Edit`, `Bash`, `Read`, …).
    public var name: String
    /// Tool input, sent as the `tool_use` block's `input` object.
    public var input: JSONValue

    /// Creates a call of any tool with a raw JSON input.
    public init(name: String, input: JSONValue) {
        self.name = name
        self.input = input
    }

    /// Creates (or overwrites) a file; `path` must be absolute (use `{{cwd}}/…`).
    public static func write(path: String, content: String) -> ToolCall {
        ToolCall(name: "Write", input: .object(["file_path": .string(path), "content": .string(content)]))
    }

    /// Replaces `old` by `new` in an existing file; the CLI requires the file to have been read
    /// first unless it was created in the same session, so precede it with ``read(path:)``.
    public static func edit(path: String, old: String, new: String) -> ToolCall {
        ToolCall(name: "Edit", input: .object([
            "file_path": .string(path), "old_string": .string(old), "new_string": .string(new),
        ]))
    }

    /// Reads a file (needed before ``edit(path:old:new:)`` of a file the session did not write).
    public static func read(path: String) -> ToolCall {
        ToolCall(name: "Read", input: .object(["file_path": .string(path)]))
    }

    /// Runs a shell command in the job's working directory.
    public static func bash(_ command: String, description: String = "scripted command") -> ToolCall {
        ToolCall(name: "Bash", input: .object(["command": .string(command), "description": .string(description)]))
    }

    /// The input with every `{{cwd}}` in string values replaced by `cwd`.
    func resolvedInput(cwd: String?) -> JSONValue {
        guard let cwd else { return input }
        return Self.substitute(input, cwd: cwd)
    }

    private static func substitute(_ value: JSONValue, cwd: String) -> JSONValue {
        switch value {
        case .string(let text): return .string(text.replacingOccurrences(of: "{{cwd}}", with: cwd))
        case .array(let items): return .array(items.map { substitute($0, cwd: cwd) })
        case .object(let fields): return .object(fields.mapValues { substitute($0, cwd: cwd) })
        default: return value
        }
    }
}

/// One answer of the scripted model: what to reply plus how (delay, usage, streaming pace).
public struct ModelTurn: Sendable {
    /// What the turn answers.
    public enum Kind: Sendable {
        /// An assistant message with `tool_use` blocks (`stop_reason: tool_use`).
        case toolUse([ToolCall])
        /// A final assistant text (`stop_reason: end_turn`).
        case text(String)
        /// An Anthropic-style error response with the given HTTP status.
        case error(status: Int, type: String, message: String, retryAfter: Int?)
        /// Never answers; the request ends only when the client disconnects or the server stops.
        case hang
    }

    /// What the turn answers.
    public var kind: Kind
    /// Time to wait before answering (the wait ends early if the client disconnects).
    public var delay: Duration = .zero
    /// Token counts reported for the turn.
    public var usage = ModelUsage()
    /// When set, text is streamed word by word with this pause between `text_delta`s.
    public var chunkDelay: Duration?

    /// Creates a turn of the given kind with default delay, usage and pace.
    public init(_ kind: Kind) {
        self.kind = kind
    }

    /// A final text answer.
    public static func text(_ text: String) -> ModelTurn { ModelTurn(.text(text)) }

    /// An answer asking the CLI to run `calls` (in one assistant message).
    public static func toolUse(_ calls: [ToolCall]) -> ModelTurn { ModelTurn(.toolUse(calls)) }

    /// An HTTP error answer with an Anthropic error body; `retryAfter` adds a `retry-after` header.
    public static func error(status: Int, type: String, message: String = "scripted error", retryAfter: Int? = nil) -> ModelTurn {
        ModelTurn(.error(status: status, type: type, message: message, retryAfter: retryAfter))
    }

    /// A turn that never answers (for timeout and cancellation tests).
    public static var hang: ModelTurn { ModelTurn(.hang) }

    /// The same turn, answered only after `duration`.
    public func delay(_ duration: Duration) -> ModelTurn {
        var copy = self
        copy.delay = duration
        return copy
    }

    /// The same turn, reporting these token counts.
    public func usage(input: Int, output: Int, cacheCreation: Int = 0, cacheRead: Int = 0) -> ModelTurn {
        var copy = self
        copy.usage = ModelUsage(
            inputTokens: input, outputTokens: output,
            cacheCreationInputTokens: cacheCreation, cacheReadInputTokens: cacheRead
        )
        return copy
    }

    /// The same turn, streaming its text word by word with `chunkDelay` between deltas.
    public func slowStream(chunkDelay: Duration) -> ModelTurn {
        var copy = self
        copy.chunkDelay = chunkDelay
        return copy
    }
}

// MARK: - Wire format

/// A turn rendered to the Anthropic Messages wire format for one request.
struct RenderedTurn: Sendable {
    /// One server-sent event, sent after `pause`.
    struct Event: Sendable {
        var name: String
        var data: JSONValue
        var pause: Duration = .zero
    }

    let messageID: String
    let model: String
    let content: [JSONValue]
    let stopReason: String
    let usage: ModelUsage
    let chunkDelay: Duration?

    /// Renders a text or tool-use turn; `nil` for error and hang turns, which have no message.
    init?(turn: ModelTurn, model: String, cwd: String?) {
        switch turn.kind {
        case .text(let text):
            content = [.object(["type": .string("text"), "text": .string(text)])]
            stopReason = "end_turn"
        case .toolUse(let calls):
            content = calls.map { call in
                .object([
                    "type": .string("tool_use"), "id": .string(Self.randomID(prefix: "toolu_")),
                    "name": .string(call.name), "input": call.resolvedInput(cwd: cwd),
                ])
            }
            stopReason = "tool_use"
        case .error, .hang:
            return nil
        }
        messageID = Self.randomID(prefix: "msg_")
        self.model = model
        usage = turn.usage
        chunkDelay = turn.chunkDelay
    }

    /// The complete message, as a non-streaming response body.
    var message: JSONValue {
        messageObject(content: content, stopReason: .string(stopReason), usage: usage)
    }

    /// What `message_start` reports: the input counts and one output token so far.
    private var startUsage: ModelUsage {
        var start = usage
        start.outputTokens = 1
        return start
    }

    /// The SSE events of a streaming response, in order.
    var events: [Event] {
        var events: [Event] = [Event(name: "message_start", data: .object([
            "type": .string("message_start"),
            "message": messageObject(content: [], stopReason: .null, usage: startUsage),
        ]))]
        for (index, block) in content.enumerated() {
            let position = JSONValue.number(Double(index))
            let type = block["type"]?.stringValue ?? "text"
            var start = block
            var deltas: [JSONValue] = []
            if type == "text" {
                start = .object(["type": .string("text"), "text": .string("")])
                deltas = textChunks(block["text"]?.stringValue ?? "").map {
                    .object(["type": .string("text_delta"), "text": .string($0)])
                }
            } else if case .object(var fields) = block {
                fields["input"] = .object([:])
                start = .object(fields)
                let json = block["input"]?.jsonText() ?? "{}"
                deltas = [.object(["type": .string("input_json_delta"), "partial_json": .string(json)])]
            }
            events.append(Event(name: "content_block_start", data: .object([
                "type": .string("content_block_start"), "index": position, "content_block": start,
            ])))
            for (number, delta) in deltas.enumerated() {
                events.append(Event(
                    name: "content_block_delta",
                    data: .object(["type": .string("content_block_delta"), "index": position, "delta": delta]),
                    pause: number > 0 ? (chunkDelay ?? .zero) : .zero
                ))
            }
            events.append(Event(name: "content_block_stop", data: .object([
                "type": .string("content_block_stop"), "index": position,
            ])))
        }
        events.append(Event(name: "message_delta", data: .object([
            "type": .string("message_delta"),
            "delta": .object(["stop_reason": .string(stopReason), "stop_sequence": .null]),
            "usage": .object(["output_tokens": .number(Double(usage.outputTokens))]),
        ])))
        events.append(Event(name: "message_stop", data: .object(["type": .string("message_stop")])))
        return events
    }

    /// `data` framed as one SSE event.
    static func frame(_ event: Event) -> String {
        "event: \(event.name)\ndata: \(event.data.jsonText())\n\n"
    }

    /// The Anthropic error body: `{"type":"error","error":{"type":…,"message":…}}`.
    static func errorBody(type: String, message: String) -> JSONValue {
        .object(["type": .string("error"), "error": .object(["type": .string(type), "message": .string(message)])])
    }

    private func messageObject(content: [JSONValue], stopReason: JSONValue, usage: ModelUsage) -> JSONValue {
        .object([
            "id": .string(messageID), "type": .string("message"), "role": .string("assistant"),
            "model": .string(model), "content": .array(content),
            "stop_reason": stopReason, "stop_sequence": .null,
            "usage": usage.json,
        ])
    }

    /// The whole text as one chunk, or word by word (each word keeps its trailing space) when slow.
    private func textChunks(_ text: String) -> [String] {
        guard chunkDelay != nil else { return [text] }
        var chunks: [String] = []
        var current = ""
        for character in text {
            current.append(character)
            if character == " " || character == "\n" {
                chunks.append(current)
                current = ""
            }
        }
        if !current.isEmpty || chunks.isEmpty { chunks.append(current) }
        return chunks
    }

    private static func randomID(prefix: String) -> String {
        prefix + String(UInt64.random(in: 0...UInt64.max), radix: 16) + String(UInt32.random(in: 0...UInt32.max), radix: 16)
    }
}
