import AsyncHTTPClient
import Foundation
import JobServer
import Logging
import NIOCore
import TestSupport
import Testing

/// Start-up checks and the gateway's structured lifetime: the socket exists (connectable by
/// another uid) while the body runs and is gone when the call returns, whichever way it ends.
@Suite struct ModelGatewayLifetimeTests {
    struct BodyFailed: Error {}

    static let logger: Logger = {
        var logger = Logger(label: "model-gateway-lifetime-test")
        logger.logLevel = .error
        return logger
    }()

    /// `lstat` of `path`: the file type and permission bits, or `nil` when nothing is there.
    func fileMode(_ path: String) -> mode_t? {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode : nil
    }

    func withClient<T>(_ body: (HTTPClient) async throws -> T) async throws -> T {
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: GatewayConfiguration.httpClientConfiguration())
        do {
            let result = try await body(client)
            try await client.shutdown()
            return result
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    @Test func socketIsConnectableWhileTheBodyRunsAndRemovedAfterwards() async throws {
        try await withTemporaryDirectory(prefix: "gw-") { directory in
            try await withClient { client in
                let path = directory + "/model.sock"
                // A stale socket file from a crashed run is replaced.
                let configuration = GatewayConfiguration(unixSocketPath: path, apiKey: "sk-real-lifetime-0001")
                try await withModelGateway(configuration, httpClient: client, logger: Self.logger) { _ in }
                let port = try await withModelGateway(configuration, httpClient: client, logger: Self.logger) { gateway in
                    let mode = try #require(fileMode(path))
                    #expect(mode & S_IFMT == S_IFSOCK)
                    #expect(mode & 0o777 == 0o666)
                    #expect(gateway.unixSocketPath == path)
                    #expect(gateway.placeholderKey.hasPrefix("sk-jobserver-placeholder-"))
                    #expect(gateway.agentEnvironment(baseURL: "http://127.0.0.1:4000") == [
                        "ANTHROPIC_BASE_URL": "http://127.0.0.1:4000", "ANTHROPIC_API_KEY": gateway.placeholderKey,
                    ])
                    return gateway.tcpPort
                }
                #expect(port == nil)
                #expect(fileMode(path) == nil)

                await #expect(throws: BodyFailed.self) {
                    try await withModelGateway(configuration, httpClient: client, logger: Self.logger) { _ in
                        #expect(fileMode(path) != nil)
                        throw BodyFailed()
                    }
                }
                #expect(fileMode(path) == nil)
            }
        }
    }

    @Test func endingTheBodyCancelsRequestsInFlightWithoutWaitingForThem() async throws {
        try await withScriptedModelServer(scripts: ["hang": [.hang]]) { server in
            try await withClient { client in
                let configuration = GatewayConfiguration(
                    listensOnLoopbackTCP: true, apiKey: "sk-real-lifetime-0002", upstreamBaseURL: server.baseURL)
                let (agent, gateway) = try await withModelGateway(configuration, httpClient: client, logger: Self.logger) { gateway async throws in
                    var request = HTTPClientRequest(url: gateway.tcpBaseURL! + "/v1/messages")
                    request.method = .POST
                    request.headers = ["x-api-key": gateway.placeholderKey, "host": "127.0.0.1", "content-type": "application/json"]
                    request.body = .bytes(ByteBuffer(string: #"{"messages":[{"role":"user","content":"[[script:hang]]"}]}"#))
                    let agent = Task { try await client.execute(request, timeout: .seconds(60)).status.code }
                    #expect(try await eventually { server.pendingRequestCount == 1 })
                    return (agent, gateway)
                }
                // The gateway is gone: its upstream call was cancelled and the agent's connection closed.
                #expect(try await eventually { server.pendingRequestCount == 0 })
                if case .success(let status) = await agent.result {
                    Issue.record("the agent got a reply (\(status)) from a gateway that was shut down")
                }
                // What the job used stays readable after the gateway has stopped.
                #expect(gateway.usage.requests == 1)
                #expect(gateway.usage.tokens.input == 0)
            }
        }
    }

    @Test func invalidConfigurationsFailBeforeAnythingIsBound() async throws {
        try await withTemporaryDirectory(prefix: "gw-") { directory in
            try await withClient { client in
                let socket = directory + "/model.sock"
                let cases: [GatewayConfiguration] = [
                    GatewayConfiguration(apiKey: "sk-real-0001"),
                    GatewayConfiguration(unixSocketPath: socket, apiKey: ""),
                    GatewayConfiguration(unixSocketPath: socket, placeholderKey: "sk-real-0001-and-more", apiKey: "sk-real-0001"),
                    GatewayConfiguration(unixSocketPath: socket, placeholderKey: "short", apiKey: "sk-real-0001"),
                    GatewayConfiguration(unixSocketPath: socket, apiKey: "sk-real\r\nx: y"),
                    GatewayConfiguration(unixSocketPath: socket, apiKey: "sk-real-0001", upstreamBaseURL: "ftp://example.com"),
                    GatewayConfiguration(unixSocketPath: socket, apiKey: "sk-real-0001", upstreamBaseURL: "http://example.com/?x=1"),
                    GatewayConfiguration(unixSocketPath: socket, apiKey: "sk-real-0001", tokenBudget: -1),
                ]
                for configuration in cases {
                    await #expect {
                        try await withModelGateway(configuration, httpClient: client, logger: Self.logger) { _ in }
                    } throws: { error in
                        guard case .invalidConfiguration = error as? GatewayError else { return false }
                        return true
                    }
                }
                #expect(fileMode(socket) == nil)

                let tooLong = directory + "/" + String(repeating: "s", count: 200)
                await #expect {
                    try await withModelGateway(
                        GatewayConfiguration(unixSocketPath: tooLong, listensOnLoopbackTCP: true, apiKey: "sk-real-0001"),
                        httpClient: client, logger: Self.logger) { _ in }
                } throws: { error in
                    guard case .bindFailed(let address, _) = error as? GatewayError else { return false }
                    return address == tooLong
                }
            }
        }
    }

    @Test func workerConfigurationProvidesKeyUpstreamAndBudget() throws {
        var worker = WorkerConfiguration(claudePath: "/bin/true")
        #expect(throws: GatewayError.self) {
            try GatewayConfiguration(worker: worker, unixSocketPath: "/tmp/x.sock")
        }
        worker.apiKey = "sk-real-0001"
        worker.upstreamBaseURL = "http://127.0.0.1:9999"
        worker.tokenBudget = 5000
        let configuration = try GatewayConfiguration(worker: worker, unixSocketPath: "/tmp/x.sock")
        #expect(configuration.apiKey == "sk-real-0001")
        #expect(configuration.upstreamBaseURL == "http://127.0.0.1:9999")
        #expect(configuration.tokenBudget == 5000)
        #expect(configuration.unixSocketPath == "/tmp/x.sock")
        let other = try GatewayConfiguration(worker: worker, unixSocketPath: nil, listensOnLoopbackTCP: true)
        #expect(other.placeholderKey != configuration.placeholderKey)
        worker.upstreamBaseURL = nil
        #expect(try GatewayConfiguration(worker: worker, unixSocketPath: nil).upstreamBaseURL == "https://api.anthropic.com")
    }
}
