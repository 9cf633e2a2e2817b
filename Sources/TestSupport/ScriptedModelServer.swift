import Foundation
import Hummingbird
import Logging
import NIOCore
import Queue
import Synchronization

/// A scripted Anthropic Messages API on loopback, so tests run the real Claude Code CLI
/// (which really writes files and runs commands) without a real model.
///
/// Contract:
/// - `POST /v1/messages` (any query, e.g. `?beta=true`) answers from the script named by the
///   first `[[script:NAME]]` marker found in the request's message text. No marker, or a name
///   that is not registered, plays ``defaultScript`` (one text turn `"OK"` unless changed).
/// - The turn played is the number of `assistant` messages the request already carries, so the
///   server keeps no per-conversation state and concurrent CLI runs can share it.
/// - `stream: true` answers with SSE (`message_start` … `message_stop`); otherwise one JSON message.
/// - `POST /v1/messages/count_tokens` answers `{"input_tokens": N}` (N is rough: bytes / 4).
/// - Every request is recorded (``requests``) before it is answered.
///
/// Start it with ``withScriptedModelServer(scripts:_:)``; it stops when the closure returns,
/// including requests still hanging or delayed.
public final class ScriptedModelServer: Sendable {
    /// The bound TCP port on 127.0.0.1.
    public let port: Int
    /// `http://127.0.0.1:PORT`, the value for `ANTHROPIC_BASE_URL`.
    public var baseURL: String { "http://127.0.0.1:\(port)" }

    let state: ScriptedModelState

    init(port: Int, state: ScriptedModelState) {
        self.port = port
        self.state = state
    }

    /// Registers (or replaces) `script` under `name`; prompts select it with `[[script:NAME]]`.
    public func register(_ script: ModelScript, as name: String) {
        state.register(script, as: name)
    }

    /// The script played for requests without a known marker.
    public var defaultScript: ModelScript {
        get { state.locked { $0.defaultScript } }
        set { state.locked { $0.defaultScript = newValue } }
    }

    /// Every request received so far, in arrival order.
    public var requests: [RecordedRequest] { state.locked { $0.requests } }

    /// Requests received but not answered yet (delayed or hanging). Drops when the client
    /// disconnects, so tests can check that a cancelled job really abandoned its model call.
    public var pendingRequestCount: Int { state.locked { $0.pending } }

    /// SSE replies being written right now.
    public var activeStreamCount: Int { state.locked { $0.activeStreams } }

    /// SSE replies written to their end (`message_stop`).
    public var completedStreamCount: Int { state.locked { $0.completedStreams } }

    /// SSE replies that stopped before their end, because the client went away.
    public var abortedStreamCount: Int { state.locked { $0.abortedStreams } }

    /// The number of `/v1/messages` requests answered from the script named `name`.
    public func requestCount(script name: String) -> Int {
        state.locked { $0.requests.filter { $0.scriptName == name && $0.isMessages }.count }
    }
}

/// What the server saw of one request, for assertions.
public struct RecordedRequest: Sendable {
    /// Request path without the query, e.g. `/v1/messages`.
    public var path: String
    /// Raw query string (without `?`), e.g. `beta=true`; empty when absent.
    public var query: String
    /// Request headers; names lower-cased, repeated headers joined with `, `.
    public var headers: [String: String]
    /// `model` from the body, if any.
    public var model: String?
    /// Whether the body asked for SSE streaming.
    public var stream: Bool
    /// Number of entries in `messages`.
    public var messageCount: Int
    /// The working directory parsed from "Primary working directory: X", if present.
    public var cwd: String?
    /// The registered script that answered, or `nil` when ``ScriptedModelServer/defaultScript`` did.
    public var scriptName: String?
    /// The index of the turn played (number of assistant messages in the request).
    public var turn: Int
    /// The full parsed JSON body (`null` when it was not JSON).
    public var body: JSONValue

    /// Whether this was a `/v1/messages` call (not `count_tokens` or another path).
    public var isMessages: Bool { path.hasSuffix("/v1/messages") }
}

/// Errors from starting the scripted server.
public enum ScriptedModelServerError: Error, Sendable {
    /// The server stopped before reporting a bound port.
    case didNotStart
}

/// Runs a ``ScriptedModelServer`` on an ephemeral 127.0.0.1 port for the duration of `body`.
///
/// The server runs in a child task of this call (structured concurrency): when `body` returns
/// or throws, the server is cancelled and this call returns only after it has fully stopped,
/// even if requests are still hanging or delayed.
public func withScriptedModelServer<T: Sendable>(
    scripts: [String: ModelScript] = [:],
    _ body: (ScriptedModelServer) async throws -> T
) async throws -> T {
    let state = ScriptedModelState(scripts: scripts)
    let (ports, portSink) = AsyncStream<Int>.makeStream()
    var logger = Logger(label: "ScriptedModelServer")
    logger.logLevel = .critical
    let app = Application(
        router: ScriptedModelState.router(state: state),
        configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
        onServerRunning: { channel in
            portSink.yield(channel.localAddress?.port ?? 0)
            portSink.finish()
        },
        logger: logger
    )
    return try await withThrowingTaskGroup(of: Void.self, returning: T.self) { group in
        group.addTask {
            defer { portSink.finish() }
            try await app.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else {
            group.cancelAll()
            try await group.waitForAll()
            throw ScriptedModelServerError.didNotStart
        }
        let server = ScriptedModelServer(port: port, state: state)
        do {
            let result = try await body(server)
            group.cancelAll()
            try? await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
    }
}

/// Scripts, default script and request log, shared by the server object and its routes.
final class ScriptedModelState: Sendable {
    struct Contents {
        var scripts: [String: ModelScript]
        var defaultScript: ModelScript = .fallback
        var requests: [RecordedRequest] = []
        var pending = 0
        var activeStreams = 0
        var completedStreams = 0
        var abortedStreams = 0
    }

    private let contents: Mutex<Contents>

    init(scripts: [String: ModelScript]) {
        contents = Mutex(Contents(scripts: scripts))
    }

    func locked<R>(_ body: (inout Contents) -> R) -> R {
        contents.withLock { body(&$0) }
    }

    func register(_ script: ModelScript, as name: String) {
        locked { $0.scripts[name] = script }
    }

    /// Limits request bodies; the CLI sends ~50 KB, long conversations a few MB.
    static let maxBodySize = 64 << 20

    static func router(state: ScriptedModelState) -> Router<BasicRequestContext> {
        let router = Router()
        router.post("/v1/messages") { request, _ -> Response in
            // Cancels delays and hangs as soon as the client goes away. Hummingbird closes the
            // connection after such a response, so say so: a client must not reuse it.
            var response = try await request.body.consumeWithCancellationOnInboundClose { body in
                let bytes = try await body.collect(upTo: maxBodySize)
                return try await state.answerMessages(request: request, body: bytes)
            }
            response.headers[.connection] = "close"
            return response
        }
        router.post("/v1/messages/count_tokens") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: maxBodySize)
            _ = state.record(request: request, body: bytes)
            let tokens = max(1, bytes.readableBytes / 4)
            return jsonResponse(.object(["input_tokens": .number(Double(tokens))]))
        }
        return router
    }

    /// Records the request and answers it from its script's turn.
    func answerMessages(request: Request, body: ByteBuffer) async throws -> Response {
        let recorded = record(request: request, body: body)
        locked { $0.pending += 1 }
        defer { locked { $0.pending -= 1 } }
        let script = locked { contents in
            recorded.scriptName.flatMap { contents.scripts[$0] } ?? contents.defaultScript
        }
        let turn = script.turn(at: recorded.turn)
        if turn.delay > .zero {
            try await Task.sleep(for: turn.delay)
        }
        switch turn.kind {
        case .hang:
            while true { try await Task.sleep(for: .seconds(3600)) }
        case .error(let status, let type, let message, let retryAfter):
            var response = Self.jsonResponse(RenderedTurn.errorBody(type: type, message: message), status: status)
            if let retryAfter {
                response.headers[.retryAfter] = String(retryAfter)
            }
            return response
        case .text, .toolUse:
            break
        }
        guard let rendered = RenderedTurn(turn: turn, model: recorded.model ?? "claude-scripted", cwd: recorded.cwd) else {
            return Self.jsonResponse(RenderedTurn.errorBody(type: "api_error", message: "unrenderable turn"), status: 500)
        }
        guard recorded.stream else {
            return Self.jsonResponse(rendered.message)
        }
        let events = rendered.events
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { [self] writer in
            locked { $0.activeStreams += 1 }
            var completed = false
            defer {
                locked { contents in
                    contents.activeStreams -= 1
                    if completed { contents.completedStreams += 1 } else { contents.abortedStreams += 1 }
                }
            }
            for event in events {
                if event.pause > .zero {
                    try await Task.sleep(for: event.pause)
                }
                try await writer.write(ByteBuffer(string: RenderedTurn.frame(event)))
            }
            try await writer.finish(nil)
            completed = true
        })
    }

    /// Parses what assertions and turn selection need from the request, and logs it.
    func record(request: Request, body: ByteBuffer) -> RecordedRequest {
        let json = JSONValue.parse(String(buffer: body)) ?? .null
        let messages = json["messages"]?.arrayValue ?? []
        let texts = messages.flatMap(Self.texts(in:)) + Self.texts(inContent: json["system"])
        let markerName = texts.lazy.compactMap(Self.scriptMarker(in:)).first
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { "\($0), \(field.value)" } ?? field.value
        }
        let path = request.uri.path
        let recorded = locked { contents in
            let known = markerName.flatMap { contents.scripts[$0] == nil ? nil : $0 }
            let entry = RecordedRequest(
                path: path,
                query: request.uri.query ?? "",
                headers: headers,
                model: json["model"]?.stringValue,
                stream: json["stream"]?.boolValue ?? false,
                messageCount: messages.count,
                cwd: texts.lazy.compactMap(Self.workingDirectory(in:)).first,
                scriptName: known,
                turn: messages.filter { $0["role"]?.stringValue == "assistant" }.count,
                body: json
            )
            contents.requests.append(entry)
            return entry
        }
        return recorded
    }

    static func jsonResponse(_ value: JSONValue, status: Int = 200) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(
            status: HTTPResponse.Status(code: status),
            headers: headers,
            body: ResponseBody(byteBuffer: ByteBuffer(string: value.jsonText()))
        )
    }

    /// All text of one message (string content or `text` blocks, including nested tool results).
    static func texts(in message: JSONValue) -> [String] {
        texts(inContent: message["content"])
    }

    static func texts(inContent content: JSONValue?) -> [String] {
        switch content {
        case .string(let text)?:
            return [text]
        case .array(let blocks)?:
            return blocks.flatMap { block -> [String] in
                if let text = block["text"]?.stringValue { return [text] }
                return texts(inContent: block["content"])
            }
        default:
            return []
        }
    }

    /// The NAME of the first `[[script:NAME]]` in `text`.
    static func scriptMarker(in text: String) -> String? {
        guard let start = text.range(of: "[[script:"),
              let end = text.range(of: "]]", range: start.upperBound..<text.endIndex)
        else { return nil }
        let name = text[start.upperBound..<end.lowerBound].trimmingCharacters(in: .whitespaces)
        return name.isEmpty ? nil : name
    }

    /// X in a "Primary working directory: X" line.
    static func workingDirectory(in text: String) -> String? {
        guard let start = text.range(of: "Primary working directory: ") else { return nil }
        let rest = text[start.upperBound...]
        let line = rest.prefix { $0 != "\n" && $0 != "\r" }
        let trimmed = line.trimmingCharacters(in: .whitespaces)
        return trimmed.isEmpty ? nil : trimmed
    }
}
