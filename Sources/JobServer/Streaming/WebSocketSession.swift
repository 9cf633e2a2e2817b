import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Queue

/// One streaming WebSocket connection: drains its `OutboundQueue` into the socket, hands each
/// client message to the route, and closes with the code the queue's outcome calls for.
///
/// The writer is the only place that decides how the connection ends: the job's `end` (close
/// `1000` after everything queued), a `StreamFailure` (its `4xxx` code and the error envelope as
/// reason, nothing more sent), or the client going away. A close that cannot get through —
/// the client stopped reading and the socket is full — is forced by dropping the connection
/// after `closeTimeout`, so a stuck client holds nothing for long.
struct WebSocketSession: Sendable {
    let queue: OutboundQueue
    let configuration: StreamingConfiguration
    let channel: any Channel
    let logger: Logger

    init(configuration: StreamingConfiguration, channel: any Channel, logger: Logger) {
        self.queue = OutboundQueue(maxMessages: configuration.queueMessages, maxBytes: configuration.queueBytes)
        self.configuration = configuration
        self.channel = channel
        self.logger = logger
    }

    /// Applies the connection-level settings (the kernel send buffer) before anything is sent.
    func prepare() async {
        await Self.limitSendBuffer(of: channel, to: configuration.socketSendBufferBytes)
    }

    /// Sets `SO_SNDBUF` on a stream connection when configured (see `StreamingConfiguration`).
    static func limitSendBuffer(of channel: any Channel, to bytes: Int?) async {
        guard let bytes else { return }
        try? await channel.setOption(ChannelOptions.socketOption(.so_sndbuf), value: SocketOptionValue(bytes))
    }

    /// Closes at once with `failure` and sends nothing else (refused authentication, a job
    /// that is not the caller's).
    func refuse(_ failure: StreamFailure, outbound: WebSocketOutboundWriter) async {
        try? await outbound.close(Self.code(failure.closeCode), reason: failure.closeReason)
    }

    /// Runs the connection until its queue ends and the close is sent, or the client goes away.
    /// - Parameters:
    ///   - background: the route's own work (its event pumps), cancelled when the connection ends.
    ///   - onMessage: handles one client message (a JSON object); a thrown `StreamFailure`
    ///     closes the connection with its code.
    /// - Throws: the inbound stream's own protocol errors (WSCore then closes with 1002/1009).
    func run(
        inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        background: @escaping @Sendable () async -> Void,
        onMessage: @escaping @Sendable (JSONValue) async throws -> Void
    ) async throws {
        enum Finished: Sendable {
            case reader((any Error)?)
            case other
        }
        let readerError = await withTaskGroup(of: Finished.self) { group -> (any Error)? in
            group.addTask {
                await background()
                return .other
            }
            group.addTask { .reader(await read(inbound, onMessage: onMessage)) }
            group.addTask {
                await forceCloseIfStuck()
                return .other
            }
            await write(outbound)
            // The close is sent: wait for the client's answer before leaving. Cancelling the
            // reader instead would end the inbound stream, and the connection would be torn
            // down with queued frames still unsent. The forced close bounds the wait.
            var error: (any Error)?
            while let finished = await group.next() {
                if case .reader(let readerError) = finished {
                    error = readerError
                    break
                }
            }
            group.cancelAll()
            return error
        }
        if let readerError { throw readerError }
    }

    // MARK: - Writing

    private func write(_ outbound: WebSocketOutboundWriter) async {
        do {
            while let batch = await queue.take() {
                for message in batch where message.kind != .heartbeat {
                    try await send(message.json, outbound: outbound)
                }
            }
        } catch {
            logger.debug("stream write failed; the client is gone", metadata: ["error": "\(error)"])
            queue.finish(.clientGone)
            return
        }
        switch queue.outcome {
        case .complete:
            logger.debug("stream complete")
            try? await outbound.close(.normalClosure, reason: nil)
        case .failed(let failure):
            logger.debug("closing stream", metadata: ["code": "\(failure.closeCode)", "error": "\(failure.code.rawValue)"])
            try? await outbound.close(Self.code(failure.closeCode), reason: failure.closeReason)
        case .clientGone, nil:
            break
        }
    }

    /// One text message, fragmented into frames of at most `maxFrameBytes`. The buffer is
    /// shared with every other connection sending the same message; nothing is copied.
    private func send(_ json: ByteBuffer, outbound: WebSocketOutboundWriter) async throws {
        var buffer = json
        var opcode = WebSocketOpcode.text
        while buffer.readableBytes > configuration.maxFrameBytes, let slice = buffer.readSlice(length: configuration.maxFrameBytes) {
            try await outbound.write(.custom(WebSocketFrame(fin: false, opcode: opcode, data: slice)))
            opcode = .continuation
        }
        try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: opcode, data: buffer)))
    }

    // MARK: - Reading

    /// Reads client messages until the client closes; returns an inbound protocol error.
    private func read(_ inbound: WebSocketInboundStream, onMessage: @Sendable (JSONValue) async throws -> Void) async -> (any Error)? {
        do {
            for try await message in inbound.messages(maxSize: configuration.maxFrameBytes) {
                guard case .text(let text) = message else {
                    throw StreamFailure.protocolError("binary messages are not supported")
                }
                guard let value = JSONValue.parse(text), value.objectValue != nil else {
                    throw StreamFailure.protocolError("message is not a JSON object")
                }
                try await onMessage(value)
            }
            logger.debug("the client closed the stream")
            queue.finish(.clientGone)
            return nil
        } catch let failure as StreamFailure {
            queue.finish(.failed(failure))
            return nil
        } catch is CancellationError {
            return nil
        } catch {
            logger.debug("stream read failed", metadata: ["error": "\(error)"])
            queue.finish(.clientGone)
            return Task.isCancelled ? nil : error
        }
    }

    // MARK: - Forced close

    /// Once the queue has ended, gives the writer `closeTimeout` to get its close through, then
    /// drops the connection (cancelled first when the writer finishes in time).
    private func forceCloseIfStuck() async {
        guard await queue.ended() != nil else { return }
        do {
            try await Task.sleep(for: configuration.closeTimeout)
        } catch {
            return
        }
        logger.debug("dropping a stream connection whose close did not get through")
        try? await channel.close()
    }

    static func code(_ code: WebSocketCloseCode) -> WebSocketErrorCode {
        WebSocketErrorCode(codeNumber: Int(code.rawValue))
    }
}
