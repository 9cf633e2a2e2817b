import AsyncHTTPClient
import Foundation
import JobServer
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Queue
import TestSupport

/// A model gateway in front of a ``ScriptedModelServer``, with a client for both of its listeners.
struct GatewayFixture: Sendable {
    /// The real key the gateway holds: random per fixture, so finding it anywhere is a leak.
    static func makeRealKey() -> String { "sk-ant-real-" + UUID().uuidString.lowercased() }

    let server: ScriptedModelServer
    let gateway: RunningGateway
    let client: HTTPClient
    let realKey: String

    enum Transport: Sendable, CaseIterable {
        case unix
        case tcp
    }

    /// A reply as the agent saw it.
    struct Reply: Sendable {
        var status: Int
        var headers: HTTPHeaders
        var body: String
        /// Interim `1xx` status lines received before the final reply (raw requests only).
        var interim: [Int] = []
        var json: JSONValue? { JSONValue.parse(body) }
        /// `error.type` of an Anthropic error body.
        var errorType: String? { json?["error"]?["type"]?.stringValue }
    }

    /// The agent's credentials and the `Host` its forwarder relays.
    var agentHeaders: [(String, String)] {
        [("x-api-key", gateway.placeholderKey), ("host", "127.0.0.1:8080")]
    }

    /// A Messages request body that selects `script`.
    static func messages(script: String, stream: Bool = false) -> JSONValue {
        .object([
            "model": .string("claude-test"), "max_tokens": .number(256), "stream": .bool(stream),
            "messages": .array([.object(["role": .string("user"), "content": .string("go \(ModelScript.marker(script))")])]),
        ])
    }

    func url(_ target: String, via transport: Transport) -> String {
        switch transport {
        case .unix: URL(httpURLWithSocketPath: gateway.unixSocketPath!, uri: target)!.absoluteString
        case .tcp: gateway.tcpBaseURL! + target
        }
    }

    /// Starts a request and returns the reply as soon as its head arrives (the body still streaming).
    func start(
        _ method: HTTPMethod = .POST, _ target: String = "/v1/messages?beta=true", json: JSONValue? = nil,
        headers: [(String, String)]? = nil, via transport: Transport = .unix
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url(target, via: transport))
        request.method = method
        request.headers = HTTPHeaders(headers ?? agentHeaders)
        if let json {
            request.headers.add(name: "content-type", value: "application/json")
            request.headers.add(name: "anthropic-version", value: "2023-06-01")
            request.headers.add(name: "anthropic-beta", value: "test-beta-2025")
            request.body = .bytes(ByteBuffer(string: json.jsonText()))
        }
        return try await client.execute(request, timeout: .seconds(30))
    }

    /// Sends a request and collects the whole reply.
    func send(
        _ method: HTTPMethod = .POST, _ target: String = "/v1/messages?beta=true", json: JSONValue? = nil,
        headers: [(String, String)]? = nil, via transport: Transport = .unix
    ) async throws -> Reply {
        let response = try await start(method, target, json: json, headers: headers, via: transport)
        let body = try await response.body.collect(upTo: 16 << 20)
        return Reply(status: Int(response.status.code), headers: response.headers, body: String(buffer: body))
    }

    /// Writes `request` as raw bytes to the TCP listener and reads one reply (head and
    /// `Content-Length` body), for what an HTTP client library would never send.
    func sendRaw(_ request: String) async throws -> Reply {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: gateway.tcpPort!) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        let text = try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(ByteBuffer(string: request))
            var received = ""
            for try await chunk in inbound {
                received += String(buffer: chunk)
                if Self.isComplete(received) { break }
            }
            return received
        }
        return Self.parseRaw(text)
    }

    private static func isComplete(_ text: String) -> Bool {
        let reply = parseRaw(text)
        guard reply.status >= 200 else { return false }
        return reply.body.utf8.count >= (reply.headers["content-length"].first.flatMap { Int($0) } ?? 0)
    }

    private static func parseRaw(_ text: String) -> Reply {
        var interim: [Int] = []
        var rest = Substring(text)
        while let end = rest.range(of: "\r\n\r\n"), let code = statusCode(rest[..<end.lowerBound]), (100..<200).contains(code) {
            interim.append(code)
            rest = rest[end.upperBound...]
        }
        let (head, body) = rest.range(of: "\r\n\r\n").map { (String(rest[..<$0.lowerBound]), String(rest[$0.upperBound...])) }
            ?? (String(rest), "")
        let lines = head.components(separatedBy: "\r\n")
        let status = statusCode(Substring(head)) ?? 0
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(name: String(line[..<colon]), value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return Reply(status: status, headers: headers, body: body, interim: interim)
    }

    /// The code of the status line that starts `head`.
    private static func statusCode(_ head: Substring) -> Int? {
        head.split(separator: " ", maxSplits: 2).dropFirst().first.flatMap { Int($0) }
    }
}

/// Runs a scripted model server and a gateway in front of it (Unix socket in a fresh private
/// directory, plus loopback TCP) for the duration of `body`.
/// - Parameter upstreamBaseURL: overrides the scripted server as the upstream.
func withGatewayFixture<T: Sendable>(
    scripts: [String: ModelScript] = [:],
    tokenBudget: Int? = nil,
    upstreamBaseURL: String? = nil,
    upstreamResponseTimeout: Duration = .seconds(30),
    maxRequestBodyBytes: Int = 32 << 20,
    _ body: @Sendable (GatewayFixture) async throws -> T
) async throws -> T {
    try await withScriptedModelServer(scripts: scripts) { server in
        try await withTemporaryDirectory(prefix: "gw-") { directory in
            // A short connect timeout: a refused upstream connection is retried until it passes.
            let client = HTTPClient(
                eventLoopGroupProvider: .singleton,
                configuration: GatewayConfiguration.httpClientConfiguration(connectTimeout: .seconds(2))
            )
            var logger = Logger(label: "model-gateway-test")
            logger.logLevel = .error
            let realKey = GatewayFixture.makeRealKey()
            let configuration = GatewayConfiguration(
                unixSocketPath: directory + "/gateway.sock", listensOnLoopbackTCP: true, apiKey: realKey,
                upstreamBaseURL: upstreamBaseURL ?? server.baseURL, tokenBudget: tokenBudget,
                upstreamResponseTimeout: upstreamResponseTimeout, maxRequestBodyBytes: maxRequestBodyBytes
            )
            do {
                let result = try await withModelGateway(configuration, httpClient: client, logger: logger) { gateway in
                    try await body(GatewayFixture(server: server, gateway: gateway, client: client, realKey: realKey))
                }
                try await client.shutdown()
                return result
            } catch {
                try? await client.shutdown()
                throw error
            }
        }
    }
}
