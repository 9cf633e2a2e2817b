import AsyncHTTPClient
import Foundation
import JobServer
import NIOCore
import NIOHTTP1
import Queue
import TestSupport
import Testing

/// Everything the model gateway refuses answers in Anthropic's error shape, is counted, and
/// never reaches the upstream.
@Suite struct ModelGatewayRefusalTests {
    @Test func missingOrWrongPlaceholderKeyGets401() async throws {
        try await withGatewayFixture { fixture in
            let host = ("host", "127.0.0.1:8080")
            let cases: [(String, [(String, String)], String)] = [
                ("no key", [host], "missing x-api-key"),
                ("wrong key", [("x-api-key", "sk-jobserver-placeholder-0000000000000000"), host], "invalid x-api-key"),
                ("the real key", [("x-api-key", fixture.realKey), host], "invalid x-api-key"),
                ("placeholder prefix", [("x-api-key", String(fixture.gateway.placeholderKey.dropLast())), host], "invalid x-api-key"),
                ("wrong bearer", [("authorization", "Bearer sk-wrong"), host], "invalid x-api-key"),
                ("basic auth", [("authorization", "Basic \(fixture.gateway.placeholderKey)"), host], "invalid x-api-key"),
                ("two keys", [("x-api-key", fixture.gateway.placeholderKey), ("x-api-key", "other"), host], "invalid x-api-key"),
            ]
            for (name, headers, message) in cases {
                let reply = try await fixture.send(json: GatewayFixture.messages(script: "x"), headers: headers)
                #expect(reply.status == 401, "\(name)")
                #expect(reply.json?["type"]?.stringValue == "error", "\(name)")
                #expect(reply.errorType == "authentication_error", "\(name)")
                #expect(reply.json?["error"]?["message"]?.stringValue == message, "\(name)")
            }
            #expect(fixture.server.requests.isEmpty)
            #expect(fixture.gateway.usage.refusedRequests == cases.count)
            #expect(fixture.gateway.usage.requests == 0)
        }
    }

    @Test func pathsAndMethodsOtherThanTheTwoForwardedAreRefused() async throws {
        try await withGatewayFixture { fixture in
            let cases: [(HTTPMethod, String, Int, String)] = [
                (.GET, "/v1/models", 404, "not_found_error"),
                (.POST, "/v1/complete", 404, "not_found_error"),
                (.GET, "/", 404, "not_found_error"),
                (.POST, "/v1/messages/batches", 404, "not_found_error"),
                (.POST, "/v1/messages/", 404, "not_found_error"),
                (.POST, "/v1//messages", 404, "not_found_error"),
                (.POST, "/v1/messages%2Fcount_tokens", 404, "not_found_error"),
                (.GET, "/v1/messages", 405, "invalid_request_error"),
                (.PUT, "/v1/messages/count_tokens?beta=true", 405, "invalid_request_error"),
                (.DELETE, "/v1/messages", 405, "invalid_request_error"),
            ]
            for (method, target, status, type) in cases {
                let body: JSONValue? = method == .POST ? GatewayFixture.messages(script: "x") : nil
                let reply = try await fixture.send(method, target, json: body, via: .tcp)
                #expect(reply.status == status, "\(method) \(target)")
                #expect(reply.errorType == type, "\(method) \(target)")
                if status == 405 { #expect(reply.headers["allow"] == ["POST"]) }
            }
            #expect(fixture.server.requests.isEmpty)
            #expect(fixture.gateway.usage.refusedRequests == cases.count)
        }
    }

    @Test func foreignHostsProxyRequestsAndGarbageAreRefused() async throws {
        try await withGatewayFixture { fixture in
            let key = fixture.gateway.placeholderKey
            let port = fixture.gateway.tcpPort!
            func post(target: String = "/v1/messages", hostLines: String) -> String {
                "POST \(target) HTTP/1.1\r\n\(hostLines)x-api-key: \(key)\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
            }
            let cases: [(String, String, Int)] = [
                ("foreign host", post(hostLines: "Host: evil.example\r\n"), 403),
                ("loopback-looking host", post(hostLines: "Host: 127.0.0.1.evil.example\r\n"), 403),
                ("port out of range", post(hostLines: "Host: localhost:99999\r\n"), 403),
                ("two hosts", post(hostLines: "Host: 127.0.0.1\r\nHost: evil.example\r\n"), 403),
                ("no host", "POST /v1/messages HTTP/1.0\r\nx-api-key: \(key)\r\ncontent-length: 2\r\n\r\n{}", 403),
                ("absolute-form to itself", post(target: "http://127.0.0.1:\(port)/v1/messages", hostLines: "Host: 127.0.0.1\r\n"), 403),
                ("absolute-form elsewhere", "GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n\r\n", 403),

                ("asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 403),
                ("not HTTP", "HELLO THERE\r\n\r\n", 400),
                ("query a URL cannot carry", post(target: "/v1/messages?beta=true|x", hostLines: "Host: 127.0.0.1\r\n"), 400),
            ]
            for (name, request, status) in cases {
                let reply = try await fixture.sendRaw(request)
                #expect(reply.status == status, "\(name): \(reply)")
                #expect(reply.errorType == (status == 403 ? "permission_error" : "invalid_request_error"), "\(name): \(reply)")
            }
            // NIO's encoder sends a reply to CONNECT without a body, whatever its status.
            let connect = try await fixture.sendRaw("CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
            #expect(connect.status == 403)
            #expect(fixture.server.requests.isEmpty)
            #expect(fixture.gateway.usage.refusedRequests == cases.count + 1)

            // Every loopback spelling is accepted; a client that asks to continue is told to.
            for host in ["localhost", "LOCALHOST:1", "[::1]:65535", "127.0.0.1"] {
                let reply = try await fixture.sendRaw(post(hostLines: "Host: \(host)\r\n"))
                #expect(reply.status == 200, "\(host): \(reply)")
                #expect(reply.interim.isEmpty)
            }
            let continued = try await fixture.sendRaw(post(hostLines: "Host: localhost\r\nExpect: 100-continue\r\n"))
            #expect(continued.interim == [100])
            #expect(continued.status == 200)
            #expect(fixture.server.requests.count == 5)
            #expect(fixture.server.requests.allSatisfy { $0.headers["expect"] == nil })
        }
    }

    @Test func exhaustedBudgetIsRefusedWithoutReachingTheUpstream() async throws {
        // Every turn reports 100 input + 20 output tokens; the budget allows two and a bit.
        try await withGatewayFixture(tokenBudget: 250) { fixture in
            for (index, stream) in [false, true, false].enumerated() {
                #expect(!fixture.gateway.budgetExceeded, "before request \(index)")
                let reply = try await fixture.send(json: GatewayFixture.messages(script: "x", stream: stream))
                #expect(reply.status == 200)
            }
            #expect(fixture.gateway.usage.budgetedTokens == 360)
            #expect(fixture.gateway.budgetExceeded)

            let refused = try await fixture.send(json: GatewayFixture.messages(script: "x"))
            #expect(refused.status == 429)
            #expect(refused.errorType == "rate_limit_error")
            #expect(refused.json?["error"]?["message"]?.stringValue == "job token budget exhausted")
            #expect(refused.headers["x-should-retry"] == ["false"])
            let counted = try await fixture.send(.POST, "/v1/messages/count_tokens", json: GatewayFixture.messages(script: "x"))
            #expect(counted.status == 429)
            #expect(fixture.server.requests.count == 3)
            #expect(fixture.gateway.usage.requests == 3)
            #expect(fixture.gateway.usage.refusedRequests == 2)
        }
    }

    @Test func unreachableUpstreamAnswers502() async throws {
        // A port that was just listening and is closed now.
        let deadPort = try await withScriptedModelServer { $0.port }
        try await withGatewayFixture(upstreamBaseURL: "http://127.0.0.1:\(deadPort)") { fixture in
            let reply = try await fixture.send(json: GatewayFixture.messages(script: "x"))
            #expect(reply.status == 502)
            #expect(reply.errorType == "api_error")
            #expect(reply.json?["error"]?["message"]?.stringValue == "upstream unreachable")
            #expect(fixture.gateway.usage.upstreamErrors == 1)
            #expect(fixture.gateway.usage.requests == 1)
        }
    }

    @Test func upstreamThatNeverAnswersTimesOutAs502() async throws {
        try await withGatewayFixture(scripts: ["hang": [.hang]], upstreamResponseTimeout: .milliseconds(300)) { fixture in
            let reply = try await fixture.send(json: GatewayFixture.messages(script: "hang"))
            #expect(reply.status == 502)
            #expect(reply.errorType == "api_error")
            #expect(fixture.gateway.usage.upstreamErrors == 1)
            #expect(try await eventually { fixture.server.pendingRequestCount == 0 })
        }
    }

    @Test func oversizedBodiesAreRefusedWith413() async throws {
        try await withGatewayFixture(maxRequestBodyBytes: 1000) { fixture in
            let big = ByteBuffer(repeating: UInt8(ascii: "a"), count: 5000)
            // Declared too large: refused from the head alone.
            var declared = HTTPClientRequest(url: fixture.url("/v1/messages", via: .unix))
            declared.method = .POST
            declared.headers = HTTPHeaders(fixture.agentHeaders)
            declared.body = .bytes(big)
            let first = try await fixture.client.execute(declared, timeout: .seconds(30))
            #expect(first.status.code == 413)
            // Chunked, no length: refused once the body passes the limit.
            var chunked = declared
            chunked.body = .stream(AsyncStream { continuation in
                for _ in 0..<5 { continuation.yield(ByteBuffer(repeating: UInt8(ascii: "b"), count: 1000)) }
                continuation.finish()
            }, length: .unknown)
            let second = try await fixture.client.execute(chunked, timeout: .seconds(30))
            #expect(second.status.code == 413)
            let body = try await second.body.collect(upTo: 1 << 16)
            #expect(JSONValue.parse(String(buffer: body))?["error"]?["type"]?.stringValue == "request_too_large")
            #expect(fixture.server.requests.isEmpty)
            #expect(fixture.gateway.usage.refusedRequests == 2)
        }
    }
}
