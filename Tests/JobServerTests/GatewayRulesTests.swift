@testable import JobServer
import NIOCore
import NIOHTTP1
import Testing

/// The pieces of the model gateway that need no sockets: usage scanning and request rules.
@Suite struct GatewayRulesTests {
    static let stream = [
        "event: message_start",
        #"data: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":120,"cache_creation_input_tokens":30,"cache_read_input_tokens":400,"output_tokens":1}}}"#,
        "",
        "event: ping",
        #"data: {"type":"ping"}"#,
        "",
        "event: content_block_delta",
        #"data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"usage \"output_tokens\":999"}}"#,
        "",
        "event: message_delta",
        #"data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":57}}"#,
        "",
        "event: message_stop",
        #"data: {"type":"message_stop"}"#,
        "",
        "",
    ]

    static let expected = TokenCounts(input: 120, output: 57, cacheCreation: 30, cacheRead: 400)

    func scan(_ chunks: [String]) -> TokenCounts {
        var scanner = UsageScanner(contentType: "text/event-stream; charset=utf-8", maxJSONBytes: 1 << 20)
        var total = TokenCounts()
        for chunk in chunks {
            total = total.plus(scanner.consume(ByteBuffer(string: chunk)))
        }
        return total.plus(scanner.finish())
    }

    @Test(arguments: ["\n", "\r\n"])
    func sseUsageIsTheSameWhereverTheChunksSplit(lineEnding: String) {
        let text = Self.stream.joined(separator: lineEnding)
        let bytes = Array(text.utf8)
        #expect(scan([text]) == Self.expected)
        for split in stride(from: 1, to: bytes.count, by: 7) {
            let first = String(decoding: bytes[..<split], as: UTF8.self)
            let second = String(decoding: bytes[split...], as: UTF8.self)
            #expect(scan([first, second]) == Self.expected, "split at \(split)")
        }
        #expect(scan(bytes.map { String(decoding: [$0], as: UTF8.self) }) == Self.expected)
    }

    @Test func sseUsageIsReportedAsItArrives() {
        var scanner = UsageScanner(contentType: "text/event-stream", maxJSONBytes: 0)
        let start = Self.stream[0...2].joined(separator: "\n") + "\n"
        #expect(scanner.consume(ByteBuffer(string: start)) == TokenCounts(input: 120, output: 1, cacheCreation: 30, cacheRead: 400))
        let rest = Self.stream[3...].joined(separator: "\n")
        #expect(scanner.consume(ByteBuffer(string: rest)) == TokenCounts(output: 56))
        #expect(scanner.finish() == TokenCounts())
    }

    @Test func jsonUsageIsReadWhenTheBodyEnds() {
        let body = #"{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":9,"output_tokens":4}}"#
        var scanner = UsageScanner(contentType: "application/json", maxJSONBytes: 1 << 20)
        let half = body.index(body.startIndex, offsetBy: 40)
        #expect(scanner.consume(ByteBuffer(string: String(body[..<half]))) == TokenCounts())
        #expect(scanner.consume(ByteBuffer(string: String(body[half...]))) == TokenCounts())
        #expect(scanner.finish() == TokenCounts(input: 9, output: 4))

        var tooBig = UsageScanner(contentType: "application/json", maxJSONBytes: 10)
        _ = tooBig.consume(ByteBuffer(string: body))
        #expect(tooBig.finish() == TokenCounts())
    }

    @Test func theScannerNamesTheModelAndTheMeterCountsByModel() async {
        var sse = UsageScanner(contentType: "text/event-stream", maxJSONBytes: 0)
        let start = #"data: {"type":"message_start","message":{"id":"m","model":"claude-a","usage":{"input_tokens":7}}}"# + "\n\n"
        let tokens = sse.consume(ByteBuffer(string: start))
        #expect(sse.model == "claude-a")
        var json = UsageScanner(contentType: "application/json", maxJSONBytes: 1 << 20)
        _ = json.consume(ByteBuffer(string: #"{"model":"claude-b","usage":{"input_tokens":3,"output_tokens":2}}"#))
        let jsonTokens = json.finish()
        #expect(json.model == "claude-b")

        let meter = UsageMeter(tokenBudget: nil)
        var reports = meter.tokenReports.makeAsyncIterator()
        meter.add(tokens, model: sse.model)
        #expect(await reports.next()?.tokensByModel == ["claude-a": ModelTokens(input: 7)])
        meter.add(jsonTokens, model: json.model)
        meter.add(TokenCounts(output: 5), model: nil)
        // Only the newest report is kept for a slow reader.
        let latest = await reports.next()
        #expect(latest?.tokensByModel == ["claude-a": ModelTokens(input: 7), "claude-b": ModelTokens(input: 3, output: 2),
                                          "": ModelTokens(output: 5)])
        #expect(latest?.budgetedTokens == 17)
        meter.finishReports()
        #expect(await reports.next() == nil)
    }

    @Test func garbageYieldsNoTokens() {
        #expect(scan(["event: message_start\ndata: {not json\n\n", "data: [1,2]\n\n", "\u{0}\u{1}\n\n"]) == TokenCounts())
    }

    @Test func loopbackHostsAreRecognisedExactly() {
        for host in ["127.0.0.1", "127.0.0.1:8080", "localhost", "LocalHost:1", "[::1]", "[::1]:65535"] {
            #expect(GatewayRequestGate.isLoopbackHost(host), "\(host)")
        }
        for host in ["", "127.0.0.2", "127.0.0.1.nip.io", "localhost.evil", "localhost:0", "localhost:65536",
                     "localhost:", "localhost:80:80", "[::1]x", "::1", "evil.example", "127.0.0.1 "] {
            #expect(!GatewayRequestGate.isLoopbackHost(host), "\(host)")
        }
    }

    @Test func gateChecksInOrderAndFirstFailureAnswers() {
        let gate = GatewayRequestGate(placeholderKey: "sk-placeholder-0123456789", maxRequestBodyBytes: 100)
        func head(_ method: HTTPMethod = .POST, _ target: String = "/v1/messages?beta=true",
                  _ headers: [(String, String)] = [("host", "127.0.0.1:1"), ("x-api-key", "sk-placeholder-0123456789")]) -> HTTPRequestHead {
            HTTPRequestHead(version: .http1_1, method: method, uri: target, headers: HTTPHeaders(headers))
        }
        #expect(gate.evaluate(head(), budgetExceeded: false) == .success(.init(endpoint: .messages, query: "beta=true")))
        #expect(gate.evaluate(head(.POST, "/v1/messages/count_tokens"), budgetExceeded: false)
            == .success(.init(endpoint: .countTokens, query: nil)))
        // A proxy request is refused before its host or key are looked at.
        #expect(gate.evaluate(head(.GET, "http://evil/v1/messages", [("host", "evil")]), budgetExceeded: true)
            == .failure(.proxyRequest(method: "GET", target: "http://evil/v1/messages")))
        #expect(gate.evaluate(head(.POST, "/v1/messages", [("host", "evil")]), budgetExceeded: true) == .failure(.foreignHost("evil")))
        #expect(gate.evaluate(head(.GET, "/v1/models"), budgetExceeded: true) == .failure(.unknownPath("/v1/models")))
        #expect(gate.evaluate(head(.POST, "/v1/messages?a|b"), budgetExceeded: false) == .failure(.malformedRequest))
        #expect(gate.evaluate(head(.GET, "/v1/messages"), budgetExceeded: true)
            == .failure(.methodNotAllowed(method: "GET", path: "/v1/messages")))
        // An exhausted budget is only reported to a caller holding the key.
        #expect(gate.evaluate(head(.POST, "/v1/messages", [("host", "localhost")]), budgetExceeded: true)
            == .failure(.unauthenticated(keyPresent: false)))
        #expect(gate.evaluate(head(), budgetExceeded: true) == .failure(.budgetExhausted))
        let large = [("host", "localhost"), ("x-api-key", "sk-placeholder-0123456789"), ("content-length", "101")]
        #expect(gate.evaluate(head(.POST, "/v1/messages", large), budgetExceeded: false) == .failure(.bodyTooLarge(limit: 100)))
    }

    @Test func placeholderComparisonNeedsTheWholeKey() {
        #expect(GatewayRequestGate.constantTimeEquals("sk-abc", "sk-abc"))
        for candidate in ["", "sk-ab", "sk-abcd", "sk-abd", "SK-ABC"] {
            #expect(!GatewayRequestGate.constantTimeEquals(candidate, "sk-abc"), "\(candidate)")
        }
    }

    @Test func upstreamHeadersCarryOnlyEndToEndFieldsAndTheRealKey() {
        let incoming = HTTPHeaders([
            ("Host", "127.0.0.1:9"), ("x-api-key", "placeholder"), ("Authorization", "Bearer placeholder"),
            ("Connection", "keep-alive, x-secret-hop"), ("x-secret-hop", "1"), ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"), ("Content-Length", "10"), ("Accept-Encoding", "gzip"),
            ("anthropic-version", "2023-06-01"), ("anthropic-beta", "a,b"), ("Content-Type", "application/json"),
            ("User-Agent", "claude-cli/2.1"), ("x-stainless-retry-count", "0"),
        ])
        let upstream = GatewayHeaders.upstream(from: incoming, apiKey: "sk-real")
        #expect(upstream.map(\.name).sorted() == [
            "Content-Type", "User-Agent", "anthropic-beta", "anthropic-version", "x-api-key", "x-stainless-retry-count",
        ])
        #expect(upstream["x-api-key"] == ["sk-real"])

        let reply = GatewayHeaders.downstream(
            from: HTTPHeaders([("content-type", "text/event-stream"), ("transfer-encoding", "chunked"),
                               ("request-id", "req_1"), ("x-echo", "was sk-real here"), ("content-length", "5")]),
            apiKey: "sk-real", keepContentLength: false)
        #expect(reply["x-echo"] == ["was [redacted] here"])
        #expect(reply["transfer-encoding"].isEmpty)
        #expect(reply["content-length"].isEmpty)
        #expect(reply["connection"] == ["close"])
        #expect(reply["request-id"] == ["req_1"])
    }
}
