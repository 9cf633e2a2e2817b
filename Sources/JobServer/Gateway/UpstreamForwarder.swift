import AsyncHTTPClient
import Logging
import NIOCore
import NIOHTTP1

/// Sends one admitted request upstream with the real key and writes the reply back to the agent.
///
/// - 2xx replies stream through chunk by chunk as the upstream sends them (an SSE reply's first
///   event reaches the agent before the upstream has finished); their usage is read on the way
///   (``UsageScanner``). They are never buffered, and never searched for the key: a success
///   reply is model output, which cannot contain a key the model never saw.
/// - Other replies are error bodies: buffered up to a small cap so the real key can be redacted
///   should the upstream echo it, then relayed with the upstream's status.
/// - No reply (refused connection, DNS, TLS, timeout before the status line): 502 `api_error`
///   "upstream unreachable". A reply cut off mid-body cannot change its status any more; the
///   connection is closed without the final chunk, so the agent sees a truncated reply.
///
/// The request body is a stream the connection fills as the agent sends it. When the agent
/// goes away the calling task is cancelled, which cancels the upstream request.
struct UpstreamForwarder: Sendable {
    let httpClient: HTTPClient
    /// Upstream base URL, without a trailing slash.
    let upstreamBase: String
    let apiKey: String
    let responseTimeout: Duration
    let maxErrorBodyBytes: Int
    let maxMeteredBodyBytes: Int
    let meter: UsageMeter
    let logger: Logger

    typealias Outbound = NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>

    /// Forwards the request and writes the whole reply to `outbound`.
    /// - Parameter declaredLength: the agent's `Content-Length`, if it sent one.
    func forward(
        _ route: GatewayRequestGate.Route, head: HTTPRequestHead,
        body: AsyncThrowingStream<ByteBuffer, any Error>, declaredLength: Int?, to outbound: Outbound
    ) async {
        var request = HTTPClientRequest(url: upstreamBase + route.pathAndQuery)
        request.method = .POST
        request.headers = GatewayHeaders.upstream(from: head.headers, apiKey: apiKey)
        request.body = .stream(body, length: declaredLength.map { .known(Int64($0)) } ?? .unknown)
        meter.record { $0.requests += 1 }

        let response: HTTPClientResponse
        do {
            response = try await httpClient.execute(request, timeout: .nanoseconds(responseTimeout.nanoseconds), logger: logger)
        } catch let reply as GatewayErrorReply {
            // The agent's body broke a limit while it was being sent.
            reply.recordRefusal(in: meter, logger: logger, method: "POST", target: route.pathAndQuery)
            try? await outbound.write(contentsOf: reply.responseParts)
            return
        } catch {
            if Task.isCancelled { return }  // the agent went away
            meter.record { $0.upstreamErrors += 1 }
            logger.warning("model upstream unreachable", metadata: ["error": "\(error)", "path": "\(route.endpoint.rawValue)"])
            try? await outbound.write(contentsOf: GatewayErrorReply.upstreamUnreachable.responseParts)
            return
        }
        if (200..<300).contains(response.status.code) {
            await streamThrough(response, metering: route.endpoint == .messages, to: outbound)
        } else {
            await relayError(response, route: route, to: outbound)
        }
    }

    private func streamThrough(_ response: HTTPClientResponse, metering: Bool, to outbound: Outbound) async {
        var scanner = metering
            ? UsageScanner(contentType: response.headers["content-type"].first, maxJSONBytes: maxMeteredBodyBytes)
            : nil
        defer {
            if let tokens = scanner?.finish() { meter.add(tokens, model: scanner?.model) }
        }
        let headers = GatewayHeaders.downstream(from: response.headers, apiKey: apiKey, keepContentLength: true)
        var upstreamFailed = false
        do {
            try await outbound.write(.head(HTTPResponseHead(version: .http1_1, status: response.status, headers: headers)))
            var chunks = response.body.makeAsyncIterator()
            while true {
                let chunk: ByteBuffer?
                do {
                    chunk = try await chunks.next()
                } catch {
                    upstreamFailed = true
                    throw error
                }
                guard let chunk else { break }
                meter.record { $0.responseBytes += chunk.readableBytes }
                if let tokens = scanner?.consume(chunk) { meter.add(tokens, model: scanner?.model) }
                try await outbound.write(.body(.byteBuffer(chunk)))
            }
            try await outbound.write(.end(nil))
        } catch {
            if upstreamFailed, !Task.isCancelled {
                meter.record { $0.upstreamErrors += 1 }
                logger.warning("model upstream reply cut off", metadata: ["error": "\(error)"])
            } else {
                logger.debug("agent went away during a model reply", metadata: ["error": "\(error)"])
            }
        }
    }

    private func relayError(_ response: HTTPClientResponse, route: GatewayRequestGate.Route, to outbound: Outbound) async {
        let status = Int(response.status.code)
        meter.record { $0.upstreamErrors += 1 }
        logger.info("model upstream answered an error", metadata: ["status": "\(status)", "path": "\(route.endpoint.rawValue)"])
        let body: ByteBuffer
        do {
            body = try await response.body.collect(upTo: maxErrorBodyBytes)
        } catch is NIOTooManyBytesError {
            try? await outbound.write(contentsOf: GatewayErrorReply.upstreamReplyTooLarge(status: status).responseParts)
            return
        } catch {
            if !Task.isCancelled {
                try? await outbound.write(contentsOf: GatewayErrorReply.upstreamUnreachable.responseParts)
            }
            return
        }
        meter.record { $0.responseBytes += body.readableBytes }
        let redacted = GatewayHeaders.redact(String(buffer: body), apiKey: apiKey)
        let headers = GatewayHeaders.downstream(from: response.headers, apiKey: apiKey, keepContentLength: false)
        try? await outbound.write(contentsOf: GatewayErrorReply.responseParts(
            status: response.status, headers: headers, body: ByteBuffer(string: redacted)))
    }
}

extension Duration {
    /// The whole duration in nanoseconds, saturating.
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? .max : scaled.addingReportingOverflow(attoseconds / 1_000_000_000).partialValue
    }
}
