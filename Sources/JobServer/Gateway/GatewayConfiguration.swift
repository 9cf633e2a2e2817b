import AsyncHTTPClient
import Foundation
import NIOCore

/// What one job's model gateway listens on, where it forwards to, and with which keys.
///
/// The worker builds one per job (see ``init(worker:unixSocketPath:listensOnLoopbackTCP:)``)
/// and passes it to ``withModelGateway(_:httpClient:logger:body:)``. The agent only ever learns
/// ``placeholderKey``; ``apiKey`` stays in the worker's memory and goes only to the upstream.
public struct GatewayConfiguration: Sendable {
    /// Anthropic's API, used when the worker has no `ANTHROPIC_BASE_URL`.
    public static let defaultUpstreamBaseURL = "https://api.anthropic.com"

    /// The Unix socket to serve (the sandbox case): created at start with mode 0666, because the
    /// agent runs as another uid (the directory around it must be private to the job), and
    /// removed at the end. An existing socket file at this path is replaced.
    public var unixSocketPath: String?
    /// Also serve on 127.0.0.1 with an ephemeral port (unsandboxed development mode, tests).
    public var listensOnLoopbackTCP: Bool
    /// The job-scoped key the agent must present (`x-api-key` or `Authorization: Bearer`).
    public var placeholderKey: String
    /// The real API key, sent upstream as `x-api-key` and never to the agent.
    public var apiKey: String
    /// Where requests go: scheme, host, optional port and path prefix, e.g. `https://api.anthropic.com`.
    public var upstreamBaseURL: String
    /// Input + output + cache-creation tokens the job may use; `nil` is unlimited. Once the
    /// recorded usage reaches it, further requests are refused without reaching the upstream.
    public var tokenBudget: Int?
    /// How long the upstream may take to start answering (its status line and headers). A
    /// streamed body may then take as long as it needs; idle gaps are bounded by the
    /// `HTTPClient`'s read timeout (see ``httpClientConfiguration()``).
    public var upstreamResponseTimeout: Duration
    /// Largest request body forwarded (Anthropic's own limit is 32 MB); larger ones get 413.
    public var maxRequestBodyBytes: Int
    /// Largest upstream error body relayed; error bodies are buffered to redact the key.
    public var maxErrorBodyBytes: Int
    /// Largest non-streamed JSON reply whose usage is read (the reply itself streams through
    /// whatever its size; only the copy kept for metering is capped).
    public var maxMeteredBodyBytes: Int

    /// Creates a configuration; see the properties for what each value means.
    public init(
        unixSocketPath: String? = nil,
        listensOnLoopbackTCP: Bool = false,
        placeholderKey: String = GatewayConfiguration.makePlaceholderKey(),
        apiKey: String,
        upstreamBaseURL: String? = nil,
        tokenBudget: Int? = nil,
        upstreamResponseTimeout: Duration = .seconds(600),
        maxRequestBodyBytes: Int = 32 << 20,
        maxErrorBodyBytes: Int = 64 << 10,
        maxMeteredBodyBytes: Int = 16 << 20
    ) {
        self.unixSocketPath = unixSocketPath
        self.listensOnLoopbackTCP = listensOnLoopbackTCP
        self.placeholderKey = placeholderKey
        self.apiKey = apiKey
        self.upstreamBaseURL = upstreamBaseURL ?? Self.defaultUpstreamBaseURL
        self.tokenBudget = tokenBudget
        self.upstreamResponseTimeout = upstreamResponseTimeout
        self.maxRequestBodyBytes = maxRequestBodyBytes
        self.maxErrorBodyBytes = maxErrorBodyBytes
        self.maxMeteredBodyBytes = maxMeteredBodyBytes
    }

    /// The configuration for one job of a worker: its real key, upstream and token budget,
    /// with a fresh placeholder key.
    /// - Throws: ``GatewayError/invalidConfiguration(_:)`` when the worker has no API key.
    public init(
        worker: WorkerConfiguration, unixSocketPath: String?, listensOnLoopbackTCP: Bool = false
    ) throws(GatewayError) {
        guard let apiKey = worker.apiKey, !apiKey.isEmpty else {
            throw .invalidConfiguration("the worker has no API key (ANTHROPIC_API_KEY)")
        }
        self.init(
            unixSocketPath: unixSocketPath, listensOnLoopbackTCP: listensOnLoopbackTCP,
            apiKey: apiKey, upstreamBaseURL: worker.upstreamBaseURL, tokenBudget: worker.tokenBudget
        )
    }

    /// A new random job-scoped key (128 bits). It has the shape of an API key so that clients
    /// which check the shape accept it, and a prefix that says what it is when it shows up in logs.
    public static func makePlaceholderKey() -> String {
        var generator = SystemRandomNumberGenerator()
        let words = (0..<2).map { _ in String(generator.next() as UInt64, radix: 16) }
        return "sk-jobserver-placeholder-" + words.map { String(repeating: "0", count: 16 - $0.count) + $0 }.joined()
    }

    /// The `HTTPClient` settings the worker's shared client should use: no redirects (a
    /// redirect must never carry the real key to another host), no decompression (bodies
    /// stream through untouched), a 10 min idle-read timeout, and `connectTimeout`. The
    /// client keeps retrying a refused connection until the connect timeout, so that is how
    /// long an unreachable upstream takes to turn into a 502.
    public static func httpClientConfiguration(connectTimeout: Duration = .seconds(10)) -> HTTPClient.Configuration {
        HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .nanoseconds(connectTimeout.nanoseconds), read: .seconds(600)),
            decompression: .disabled
        )
    }

    /// The upstream base URL without a trailing slash, checked; request paths are appended to it.
    func validatedUpstreamBase() throws(GatewayError) -> String {
        var base = upstreamBaseURL.trimmingCharacters(in: .whitespaces)
        while base.hasSuffix("/") { base.removeLast() }
        guard let url = URL(string: base), let scheme = url.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty,
              url.query == nil, url.fragment == nil, url.user == nil
        else {
            throw .invalidConfiguration("upstream base URL must be http(s)://host[:port][/prefix], got \(upstreamBaseURL)")
        }
        return base
    }

    /// Checks everything that would otherwise fail later or leak the key.
    func validate() throws(GatewayError) {
        guard unixSocketPath != nil || listensOnLoopbackTCP else {
            throw .invalidConfiguration("neither a Unix socket path nor loopback TCP was asked for")
        }
        if let path = unixSocketPath, path.isEmpty {
            throw .invalidConfiguration("the Unix socket path is empty")
        }
        guard !apiKey.isEmpty, Self.isHeaderValue(apiKey) else {
            throw .invalidConfiguration("the API key is empty or not a valid header value")
        }
        guard placeholderKey.utf8.count >= 16, Self.isHeaderValue(placeholderKey) else {
            throw .invalidConfiguration("the placeholder key must be at least 16 printable characters")
        }
        guard !placeholderKey.contains(apiKey), !apiKey.contains(placeholderKey) else {
            throw .invalidConfiguration("the placeholder key must not contain the API key")
        }
        if let budget = tokenBudget, budget < 0 {
            throw .invalidConfiguration("the token budget must not be negative")
        }
        guard maxRequestBodyBytes > 0, maxErrorBodyBytes > 0, maxMeteredBodyBytes >= 0,
              upstreamResponseTimeout > .zero
        else {
            throw .invalidConfiguration("size limits and the upstream timeout must be positive")
        }
        _ = try validatedUpstreamBase()
    }

    private static func isHeaderValue(_ value: String) -> Bool {
        value.utf8.allSatisfy { $0 >= 0x21 && $0 < 0x7F }
    }
}
