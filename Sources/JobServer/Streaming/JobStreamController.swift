import Hummingbird
import HummingbirdWebSocket
import Queue

/// `GET /v1/jobs/{id}/stream` (WebSocket): every event of one job after `?after=` (default 0),
/// in order, then live ones as the worker commits them, then `{"type": "end", "job": {…}}` and
/// close `1000`. Works during the job and after it (replay). The client may send
/// `{"after": n}` to rewind: the server answers `{"type": "rewound", "after": n}` and the
/// stream restarts after `n`.
///
/// No token, a bad token, or someone else's job: the connection closes at once with `4011` or
/// `4013` and nothing else is sent (another user's job looks exactly like a missing one).
struct JobStreamController: Sendable {
    let store: any JobStore
    let hub: JobEventHub

    func addRoutes(to router: Router<JobServerWebSocketContext>) {
        WebSocketRoutes.stream("v1/jobs/:id/stream", on: router, configuration: hub.configuration, handle)
    }

    @Sendable func handle(
        session: WebSocketSession, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        context: WebSocketRouterContext<JobServerWebSocketContext>
    ) async throws {
        let job: JobID
        let after: Int64
        do {
            (job, after) = try await open(context)
        } catch {
            await session.refuse(StreamFailure.from(error), outbound: outbound)
            return
        }
        let queue = session.queue
        let pumps = PumpGroup(queue: queue)
        pumps.start(job, after: after)
        try await session.run(inbound: inbound, outbound: outbound, background: { [hub] in
            await pumps.run { job, after, generation in
                do {
                    try await EventPump.follow(job, after: after, generation: generation, hub: hub, queue: queue)
                    queue.finish(.complete)
                } catch {
                    if !Task.isCancelled, !(error is CancellationError) { queue.finish(.failed(StreamFailure.from(error))) }
                }
            }
        }, onMessage: { message in
            guard case .rewind(let position) = try StreamClientMessage.parseJobStream(message) else { return }
            pumps.start(job, after: position, announce: .reply("rewound", jobID: job, ["after": .number(Double(position))]))
        })
    }

    /// The caller's job and the position to start after.
    /// - Throws: `StreamFailure` (unauthorized, not found, a bad `after`), store errors.
    private func open(_ context: WebSocketRouterContext<JobServerWebSocketContext>) async throws -> (JobID, Int64) {
        let user = try context.requestContext.identity.get()
        guard let text = context.requestContext.parameters.get("id"), let id = JobID(rawValue: text),
              try await store.job(id, userID: user.id) != nil
        else { throw StreamFailure.jobNotFound }
        var after: Int64 = 0
        if let value = context.request.uri.queryParameters["after"] {
            guard let number = Int64(value), number >= 0 else { throw StreamFailure.protocolError("after must be an integer >= 0") }
            after = number
        }
        return (id, after)
    }
}
