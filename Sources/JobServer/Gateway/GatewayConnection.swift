import Logging
import NIOCore
import NIOHTTP1

/// Serves one accepted connection: exactly one request, then the connection closes.
///
/// One request per connection keeps every exchange independent (no pipelining, no state
/// between requests) at the cost of a connect per model call, which on a local socket is
/// noise next to the model's latency. Replies say `Connection: close`.
///
/// Two tasks per request, because the agent's side must be watched while the reply is written:
/// - this task reads the agent's side: it feeds the request body into a stream the upstream
///   request consumes (bounded by the body limit), then keeps reading until the agent closes
///   the connection. When that happens before the reply is done, the agent has gone away and
///   the reply task is cancelled, which cancels the upstream request — even while the upstream
///   is silent (no status yet, or a pause mid-stream).
/// - a child task writes the reply (forwarded or refused), then gives the agent
///   ``lingerAfterReply`` to read it and close before closing the connection itself.
struct GatewayConnection: Sendable {
    typealias Channel = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let gate: GatewayRequestGate
    let forwarder: UpstreamForwarder
    let meter: UsageMeter
    let maxRequestBodyBytes: Int
    let logger: Logger

    /// How long a finished reply waits for the agent to close the connection.
    static let lingerAfterReply: Duration = .seconds(5)

    func serve(_ connection: Channel) async {
        let channel = connection.channel
        do {
            try await connection.executeThenClose { inbound, outbound in
                var parts = inbound.makeAsyncIterator()
                let head: HTTPRequestHead
                do {
                    guard case .head(let first)? = try await parts.next() else { return }
                    head = first
                } catch is HTTPParserError {
                    GatewayErrorReply.malformedRequest.recordRefusal(in: meter, logger: logger)
                    try? await outbound.write(contentsOf: GatewayErrorReply.malformedRequest.responseParts)
                    return
                }
                let decision = gate.evaluate(head, budgetExceeded: meter.budgetExceeded)
                switch decision {
                case .failure(let reply):
                    reply.recordRefusal(in: meter, logger: logger, method: head.method.rawValue, target: head.uri)
                case .success:
                    // A client waiting for `100 Continue` gets it before anything else is written.
                    if head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
                        try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .continue)))
                    }
                }
                let (body, bodySink) = AsyncThrowingStream<ByteBuffer, any Error>.makeStream()
                let declaredLength = head.headers["content-length"].first.flatMap { Int($0) }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        switch decision {
                        case .success(let route):
                            await forwarder.forward(route, head: head, body: body, declaredLength: declaredLength, to: outbound)
                        case .failure(let reply):
                            try? await outbound.write(contentsOf: reply.responseParts)
                        }
                        try? await Task.sleep(for: Self.lingerAfterReply)
                        channel.close(promise: nil)
                    }
                    let forwarding = (try? decision.get()) != nil
                    await readRequestBody(from: &parts, into: forwarding ? bodySink : nil)
                    // The agent closed its side: a reply still being written has nobody to go to.
                    group.cancelAll()
                }
            }
        } catch {
            logger.debug("model gateway connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Feeds the body into `sink` (or discards it when the request was refused), then reads
    /// on until the connection closes, ignoring anything sent after the first request.
    private func readRequestBody(
        from parts: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator,
        into sink: AsyncThrowingStream<ByteBuffer, any Error>.Continuation?
    ) async {
        var received = 0
        var bodyEnded = false
        do {
            while let part = try await parts.next() {
                guard !bodyEnded else { continue }
                switch part {
                case .body(let buffer):
                    received += buffer.readableBytes
                    if received > maxRequestBodyBytes {
                        sink?.finish(throwing: GatewayErrorReply.bodyTooLarge(limit: maxRequestBodyBytes))
                        bodyEnded = true
                    } else if let sink {
                        sink.yield(buffer)
                        meter.record { $0.requestBytes += buffer.readableBytes }
                    }
                case .end:
                    sink?.finish()
                    bodyEnded = true
                case .head:
                    break
                }
            }
        } catch {
            logger.debug("model gateway stopped reading a connection", metadata: ["error": "\(error)"])
        }
        if !bodyEnded {
            sink?.finish(throwing: CancellationError())
        }
    }
}
