import Hummingbird
import HummingbirdWebSocket
import Logging
import Queue
import Synchronization

/// `GET /v1/stream` (WebSocket): submit jobs over the socket and follow them on it.
///
/// Client messages (`StreamClientMessage`): `submit` (the `POST /v1/jobs` body as `job`),
/// `subscribe` (an existing job, from `after`), `unsubscribe`, `cancel`. Each gets a reply
/// (`submitted`, `subscribed`, `unsubscribed`, `cancel_requested`, or `error` with the error
/// envelope; `request_id` is echoed) and the socket stays open. Every event message carries its
/// `job_id`; each followed job ends with its own `end` message. Up to
/// `StreamingConfiguration.maxJobsPerSocket` jobs are followed at once. A socket that follows
/// nothing and says nothing for `idleTimeout` is closed with `4001`.
struct StreamSocketController: Sendable {
    let store: any JobStore
    let workspaces: WorkspaceStore
    let hub: JobEventHub
    var admission = Admission()

    func addRoutes(to router: Router<JobServerWebSocketContext>) {
        WebSocketRoutes.stream("v1/stream", on: router, configuration: hub.configuration, handle)
    }

    @Sendable func handle(
        session: WebSocketSession, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter,
        context: WebSocketRouterContext<JobServerWebSocketContext>
    ) async throws {
        let user: User
        do {
            user = try context.requestContext.identity.get()
        } catch {
            await session.refuse(StreamFailure.from(error), outbound: outbound)
            return
        }
        let connection = Connection(
            user: user, store: store, submission: JobSubmission(store: store, workspaces: workspaces, admission: admission),
            hub: hub, session: session, logger: context.logger)
        try await session.run(inbound: inbound, outbound: outbound, background: {
            await withDiscardingTaskGroup { group in
                group.addTask { await connection.runPumps() }
                group.addTask { await connection.closeWhenIdle() }
            }
        }, onMessage: connection.handle)
    }
}

extension StreamSocketController {
    /// One `/v1/stream` socket's state and message handling.
    final class Connection: Sendable {
        let user: User
        let store: any JobStore
        let submission: JobSubmission
        let hub: JobEventHub
        let session: WebSocketSession
        let logger: Logger
        let pumps: PumpGroup
        private let lastMessage = Mutex(ContinuousClock.now)

        init(user: User, store: any JobStore, submission: JobSubmission, hub: JobEventHub, session: WebSocketSession, logger: Logger) {
            self.user = user
            self.store = store
            self.submission = submission
            self.hub = hub
            self.session = session
            self.logger = logger
            self.pumps = PumpGroup(queue: session.queue)
        }

        var queue: OutboundQueue { session.queue }
        var configuration: StreamingConfiguration { hub.configuration }

        func runPumps() async {
            await pumps.run { [hub, queue] job, after, generation in
                do {
                    try await EventPump.follow(job, after: after, generation: generation, hub: hub, queue: queue)
                } catch {
                    guard !Task.isCancelled, !(error is CancellationError) else { return }
                    let failure = StreamFailure.from(error)
                    if failure == .slowConsumer {
                        queue.finish(.failed(failure))
                    } else {
                        // One job's stream failed (the store is unavailable): report it, keep the socket.
                        self.reply(.error(APIError(failure.code, failure.message, details: failure.details), jobID: job))
                    }
                }
            }
        }

        /// Closes the socket with `4001` once it follows no job and the client has been silent
        /// for `idleTimeout`.
        func closeWhenIdle() async {
            while !Task.isCancelled {
                let silentSince = lastMessage.withLock { $0 }
                let deadline = silentSince + configuration.idleTimeout
                if ContinuousClock.now >= deadline {
                    if pumps.jobs.isEmpty {
                        queue.finish(.failed(.idle))
                        return
                    }
                    lastMessage.withLock { $0 = ContinuousClock.now }  // following a job is activity
                    continue
                }
                try? await Task.sleep(until: deadline)
            }
        }

        @Sendable func handle(_ value: JSONValue) async throws {
            lastMessage.withLock { $0 = ContinuousClock.now }
            switch try StreamClientMessage.parseSocket(value) {
            case .submit(let job, let key, let requestID):
                await submit(job, idempotencyKey: key, requestID: requestID)
            case .subscribe(let text, let after, let requestID):
                do {
                    guard let id = JobID(rawValue: text), try await store.job(id, userID: user.id) != nil else {
                        throw APIError.notFound("job")
                    }
                    try checkRoom(for: id)
                    pumps.start(id, after: after, announce: .reply("subscribed", jobID: id, requestID: requestID, [
                        "after": .number(Double(after)),
                    ]))
                } catch {
                    reply(.error(APIError.from(error, logger: logger), requestID: requestID))
                }
            case .unsubscribe(let text, let requestID):
                guard let id = JobID(rawValue: text), pumps.jobs.contains(id) else {
                    reply(.error(APIError(.notFound, "not following that job"), requestID: requestID))
                    return
                }
                pumps.stop(id)
                reply(.reply("unsubscribed", jobID: id, requestID: requestID))
            case .cancel(let text, let requestID):
                await cancel(text, requestID: requestID)
            case .rewind:
                throw StreamFailure.protocolError("unknown action")
            }
        }

        private func submit(_ body: JSONValue, idempotencyKey: String?, requestID: JSONValue?) async {
            do {
                try checkRoom(for: nil)
                let key = try idempotencyKey.map { key throws(APIError) in
                    try JobSubmission.validateIdempotencyKey(key, field: "idempotency_key")
                }
                let outcome = try await submission.submit(body, user: user, idempotencyKey: key)
                let job = outcome.job
                pumps.start(job.id, after: 0, announce: .reply("submitted", jobID: job.id, requestID: requestID, [
                    "replayed": .bool(outcome.replayed), "job": JobView.json(job),
                ]))
            } catch {
                reply(.error(APIError.from(error, logger: logger), requestID: requestID))
            }
        }

        private func cancel(_ text: String, requestID: JSONValue?) async {
            do {
                guard let id = JobID(rawValue: text), let job = try await store.requestCancel(id, userID: user.id) else {
                    throw APIError.notFound("job")
                }
                if job.status == .succeeded || job.status == .failed {
                    throw APIError(.conflict, "job already \(job.status.rawValue)", status: .conflict,
                                   details: .object(["status": .string(job.status.rawValue)]))
                }
                reply(.reply("cancel_requested", jobID: id, requestID: requestID, ["job": JobView.json(job)]))
            } catch {
                reply(.error(APIError.from(error, logger: logger), jobID: JobID(rawValue: text), requestID: requestID))
            }
        }

        /// Refuses to follow one more job past `maxJobsPerSocket` (`E002`); re-subscribing to a
        /// followed job is always fine.
        private func checkRoom(for job: JobID?) throws(APIError) {
            let followed = pumps.jobs
            if let job, followed.contains(job) { return }
            guard followed.count < configuration.maxJobsPerSocket else {
                throw APIError(.rateLimit, "this socket already follows \(followed.count) jobs", status: .tooManyRequests,
                               details: .object(["limit": .string("jobs_per_socket"),
                                                 "max": .number(Double(configuration.maxJobsPerSocket))]))
            }
        }

        /// Queues a reply; a client too slow to take it is closed as a slow consumer.
        private func reply(_ message: StreamMessage) {
            if !queue.reply(message) { queue.finish(.failed(.slowConsumer)) }
        }
    }
}
