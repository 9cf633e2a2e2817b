import AsyncHTTPClient
import Foundation
import JobServer
import Logging
import NIOCore
import Queue
import TestSupport
import Testing

/// The model gateway forwarding to a scripted upstream on loopback, over its Unix socket and
/// its TCP listener, with a real HTTP client as the agent.
@Suite struct ModelGatewayTests {
    @Test(arguments: GatewayFixture.Transport.allCases)
    func jsonReplyIsForwardedWithTheRealKeyAndItsUsageRecorded(via transport: GatewayFixture.Transport) async throws {
        let script: ModelScript = [ModelTurn.text("hello there").usage(input: 123, output: 45, cacheCreation: 7, cacheRead: 11)]
        try await withGatewayFixture(scripts: ["json": script]) { fixture in
            let request = GatewayFixture.messages(script: "json")
            let reply = try await fixture.send(json: request, via: transport)
            #expect(reply.status == 200)
            #expect(reply.json?["content"]?.arrayValue?.first?["text"]?.stringValue == "hello there")
            #expect(reply.headers["connection"] == ["close"])
            #expect(!reply.body.contains(fixture.realKey))

            let upstream = try #require(fixture.server.requests.last)
            #expect(upstream.path == "/v1/messages")
            #expect(upstream.query == "beta=true")
            #expect(upstream.scriptName == "json")
            #expect(upstream.headers["x-api-key"] == fixture.realKey)
            #expect(upstream.headers["anthropic-beta"] == "test-beta-2025")
            #expect(upstream.headers["anthropic-version"] == "2023-06-01")
            #expect(upstream.headers["content-type"] == "application/json")
            #expect(upstream.headers["authorization"] == nil)
            #expect(!upstream.headers.values.contains { $0.contains(fixture.gateway.placeholderKey) })

            let usage = fixture.gateway.usage
            #expect(usage.tokens.input == 123)
            #expect(usage.tokens.output == 45)
            #expect(usage.tokens.cacheCreation == 7)
            #expect(usage.tokens.cacheRead == 11)
            #expect(usage.budgetedTokens == 123 + 45 + 7)
            #expect(usage.requests == 1)
            #expect(usage.refusedRequests == 0)
            #expect(usage.upstreamErrors == 0)
            #expect(usage.requestBytes == request.jsonText().utf8.count)
            #expect(usage.responseBytes == reply.body.utf8.count)
        }
    }

    @Test func bearerPlaceholderIsAcceptedAndReplacedByTheRealKey() async throws {
        try await withGatewayFixture { fixture in
            let headers = [("authorization", "Bearer \(fixture.gateway.placeholderKey)"), ("host", "localhost")]
            let reply = try await fixture.send(json: GatewayFixture.messages(script: "none"), headers: headers)
            #expect(reply.status == 200)
            let upstream = try #require(fixture.server.requests.last)
            #expect(upstream.headers["x-api-key"] == fixture.realKey)
            #expect(upstream.headers["authorization"] == nil)
        }
    }

    @Test func sseReplyReachesTheAgentBeforeTheUpstreamHasFinished() async throws {
        // The second word leaves the upstream only after a long pause: the first must already
        // be through the gateway by then.
        let script: ModelScript = [ModelTurn.text("first second").usage(input: 321, output: 54).slowStream(chunkDelay: .seconds(2))]
        try await withGatewayFixture(scripts: ["sse": script]) { fixture in
            let response = try await fixture.start(json: GatewayFixture.messages(script: "sse", stream: true))
            #expect(response.status.code == 200)
            #expect(response.headers["content-type"] == ["text/event-stream"])
            var chunks = response.body.makeAsyncIterator()
            var received = ""
            while !received.contains("\"first \""), let chunk = try await chunks.next() {
                received += String(buffer: chunk)
            }
            #expect(received.contains("event: message_start"))
            #expect(received.contains("\"first \""))
            #expect(!received.contains("second"))
            #expect(fixture.server.completedStreamCount == 0)
            #expect(fixture.server.activeStreamCount == 1)
            // Usage from message_start is recorded while the stream is still open.
            #expect(fixture.gateway.usage.tokens.input == 321)

            while let chunk = try await chunks.next() {
                received += String(buffer: chunk)
            }
            #expect(received.contains("second"))
            #expect(received.hasSuffix("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"))
            #expect(try await eventually { fixture.server.completedStreamCount == 1 })
            let usage = fixture.gateway.usage
            #expect(usage.tokens.input == 321)
            #expect(usage.tokens.output == 54)
            #expect(usage.requests == 1)
        }
    }

    @Test func countTokensIsForwardedAndCostsNoBudget() async throws {
        try await withGatewayFixture(tokenBudget: 1000) { fixture in
            let reply = try await fixture.send(.POST, "/v1/messages/count_tokens?beta=true", json: GatewayFixture.messages(script: "count"))
            #expect(reply.status == 200)
            #expect((reply.json?["input_tokens"]?.intValue ?? 0) > 0)
            let upstream = try #require(fixture.server.requests.last)
            #expect(upstream.path == "/v1/messages/count_tokens")
            #expect(upstream.query == "beta=true")
            #expect(upstream.headers["x-api-key"] == fixture.realKey)
            #expect(fixture.gateway.usage.requests == 1)
            #expect(fixture.gateway.usage.budgetedTokens == 0)
        }
    }

    @Test func upstreamErrorEchoingTheRealKeyReachesTheAgentRedacted() async throws {
        try await withGatewayFixture { fixture in
            fixture.server.register([
                .error(status: 400, type: "invalid_request_error", message: "key \(fixture.realKey) is not allowed here"),
            ], as: "echo")
            let reply = try await fixture.send(json: GatewayFixture.messages(script: "echo"))
            #expect(reply.status == 400)
            #expect(reply.errorType == "invalid_request_error")
            #expect(reply.json?["error"]?["message"]?.stringValue == "key [redacted] is not allowed here")
            #expect(!reply.body.contains(fixture.realKey))
            #expect(reply.headers["content-length"] == [String(reply.body.utf8.count)])
            #expect(fixture.gateway.usage.upstreamErrors == 1)
            #expect(fixture.gateway.usage.refusedRequests == 0)
        }
    }

    @Test func agentGoingAwayCancelsAnUpstreamRequestThatHasNotAnswered() async throws {
        try await withGatewayFixture(scripts: ["hang": [.hang]]) { fixture async throws in
            let agent = Task { try await fixture.send(json: GatewayFixture.messages(script: "hang")) }
            #expect(try await eventually { fixture.server.pendingRequestCount == 1 })
            agent.cancel()
            #expect(try await eventually { fixture.server.pendingRequestCount == 0 })
            if case .success(let reply) = await agent.result {
                Issue.record("a cancelled request got a reply: \(reply.status)")
            }
        }
    }

    @Test func agentGoingAwayMidStreamCancelsTheUpstreamStream() async throws {
        let words = (1...100).map { "w\($0)" }.joined(separator: " ")
        let script: ModelScript = [ModelTurn.text(words).slowStream(chunkDelay: .milliseconds(100))]
        try await withGatewayFixture(scripts: ["long": script]) { fixture async throws in
            let (firstDelta, signal) = AsyncStream<Void>.makeStream()
            let agent = Task {
                let response = try await fixture.start(json: GatewayFixture.messages(script: "long", stream: true))
                var received = ""
                for try await chunk in response.body {
                    received += String(buffer: chunk)
                    if received.contains("content_block_delta") { signal.yield() }
                }
            }
            for await _ in firstDelta { break }
            agent.cancel()
            // Ten seconds of stream were scripted; the gateway must drop it, not drain it.
            #expect(try await eventually { fixture.server.abortedStreamCount == 1 })
            #expect(fixture.server.completedStreamCount == 0)
            _ = await agent.result
        }
    }
}
