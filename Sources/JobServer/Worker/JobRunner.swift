import AsyncHTTPClient
import Foundation
import Logging
import Queue
import Sandbox

/// Runs one claimed job from start to finish (DESIGN §5): snapshot the workspace, launch the
/// agent through the launcher seam, stream its output into the event log, keep the lease,
/// then compute the change set, apply it, and complete the job with result, metrics or error.
struct JobRunner: Sendable {
    let store: any JobStore
    let workspaces: WorkspaceStore
    let launcher: any AgentLauncher
    let httpClient: HTTPClient
    let configuration: WorkerConfiguration
    let runsDirectory: String
    let logger: Logger

    /// How an attempt ends, as far as the store is concerned.
    enum Outcome: Sendable {
        case complete(JobCompletion)
        /// Give the job back to the queue without using an attempt (worker shutdown).
        case release
        /// Another worker owns the job now (lease lost): touch nothing.
        case abandon
    }

    /// Runs the job; returns once the job is completed in the store, released, or its lease
    /// is lost. The lease is kept alive for the whole attempt (snapshot, agent, change set,
    /// apply). `interruption.release()` (worker shutdown past its grace) stops the agent and
    /// gives the job back to the queue so another worker takes it without losing an attempt.
    /// - Parameter cancelGeneration: the store's `.cancel` generation read before the claim.
    func run(_ job: JobRecord, owner: String, cancelGeneration: UInt64, interruption: JobInterruption = JobInterruption()) async {
        let logger = self.logger.with(["job_id": "\(job.id)", "attempt": "\(job.attempt)"])
        let stop = Locked<LeaseKeeper.Stop?>(nil)
        let keeper = LeaseKeeper(store: store, jobID: job.id, owner: owner, lease: configuration.lease,
                                 interval: configuration.heartbeat, logger: logger)
        let run = RunDirectory(root: runsDirectory, jobID: job.id, attempt: job.attempt)
        let outcome = await withTaskGroup(of: Void.self) { group -> Outcome in
            group.addTask {
                _ = await keeper.run(since: cancelGeneration) { why in
                    stop.withLock { $0 = why }
                    interruption.control.stop(.cancelled)
                }
            }
            let outcome = await attempt(job, owner: owner, run: run, interruption: interruption, stop: stop, logger: logger)
            group.cancelAll()
            return outcome
        }
        if !configuration.keepRuns { run.remove() }
        switch outcome {
        case .complete(let completion):
            await finish(job, owner: owner, completion, logger: logger)
        case .release:
            do {
                try await store.release(job.id, owner: owner)
                logger.info("released job at shutdown")
            } catch {
                logger.warning("could not release job", metadata: ["error": "\(error)"])
            }
        case .abandon:
            logger.warning("abandoning job: lease lost")
        }
    }

    private func attempt(
        _ job: JobRecord, owner: String, run: RunDirectory, interruption: JobInterruption,
        stop: Locked<LeaseKeeper.Stop?>, logger: Logger
    ) async -> Outcome {
        let request: JobRequest
        do {
            request = try JSONValue.decode(JobRequest.self, from: job.payload)
        } catch {
            return .complete(.failed(JobError(.invalidRequest, "stored job request is unreadable"), result: nil, metrics: nil))
        }
        do {
            try run.create()
            let project = try ProjectName(validating: request.project)
            try await BlockingIO.run { [workspaces] in
                // A missing project snapshots as empty: a generate job may start from nothing.
                try workspaces.snapshot(user: job.userID, project: project, to: run.base)
                try WorkspaceSnapshot.copy(from: run.base, to: run.work)
            }
        } catch {
            let jobError = (error as? JobError) ?? JobError(.fileAccess, "could not prepare the job's workspace: \(error)")
            return .complete(.failed(jobError, result: nil, metrics: nil))
        }
        let profile = AgentProfile.profile(for: request)
        let launchRequest = LaunchRequest(
            jobID: job.id.rawValue, userKey: job.userID.rawValue, executable: configuration.claudePath,
            arguments: profile.arguments(for: request), environment: agentEnvironment(),
            workspace: run.work, home: run.home, scratch: run.scratch, limits: configuration.limits)
        let batcher = EventBatcher(store: store, jobID: job.id, owner: owner, byteLimit: configuration.maxEventLogBytes) {
            // The store refused events past the log's cap: stop the agent; the job fails with E008 below.
            interruption.control.stop(.outputLimit)
        }
        await batcher.add(NewEvent(type: "status", data: JSONValue.object([
            "status": .string("running"), "attempt": .number(Double(job.attempt)),
            "worker": .string(owner), "launcher": .string(launcher.name),
        ]).jsonText()))
        let stream = Locked(AgentStream())
        let usage = JobUsageCounter(store: store, jobID: job.id, owner: owner, logger: logger) { _ in
            interruption.control.stop(.cancelled)
        }
        let limits = SupervisionLimits(
            wallClock: .seconds(request.options.timeoutSeconds), idle: .seconds(request.options.idleTimeoutSeconds),
            maxOutputBytes: configuration.maxOutputBytes)
        let session = AgentSession(launcher: launcher, httpClient: httpClient, configuration: configuration, logger: logger)
        let outcome = await withTaskGroup(of: Void.self) { group -> AgentSession.Outcome in
            group.addTask { await batcher.run() }
            let quotaWatch = Task { [control = interruption.control, quota = workspaces.limits.maxProjectBytes] in
                await WorkspaceQuotaWatch(path: run.work, limitBytes: Int64(quota)).run {
                    control.stop(.limitExceeded(limit: "workspace_bytes", amount: $0))
                }
            }
            let outcome = await session.run(launchRequest, limits: limits, control: interruption.control, usage: usage) { line in
                if let event = stream.withLock({ $0.consume(line) }) {
                    await batcher.add(event)
                    await usage.observe(event)
                }
            }
            quotaWatch.cancel()
            await quotaWatch.value
            // Not a cancellation: the batcher writes what is pending, then its loop returns.
            await batcher.close()
            return outcome
        }
        await usage.settle(result: stream.value.result)
        guard let report = outcome.report else {
            return .complete(.failed(outcome.failure ?? JobError(.internal, "the agent did not run"), result: nil, metrics: nil))
        }

        if interruption.isReleased { return .release }
        let stopReason = stop.value
        if stopReason == .leaseLost { return .abandon }
        if await batcher.leaseLost { return .abandon }
        let summary = stream.value
        let metrics = Self.metrics(job: job, report: report, stream: summary, gateway: outcome.usage)
        if stopReason == .cancelled { return .complete(.cancelled(result: nil, metrics: metrics)) }
        if await batcher.logFull {
            let bytes = configuration.maxEventLogBytes
            return .complete(.failed(JobError(.resourceLimit, "the job's event log exceeded \(bytes) bytes", details: .object([
                "limit": .string("event_log_bytes"), "bytes": .number(Double(bytes)),
            ])), result: nil, metrics: metrics))
        }
        if outcome.budgetExceeded, let budget = configuration.tokenBudget {
            return .complete(.failed(JobError(
                .resourceLimit, "the job used its token budget of \(budget) tokens",
                details: .object(["limit": .string("job_tokens"), "budget": .number(Double(budget)),
                                  "used": .number(Double(outcome.usage.budgetedTokens))])), result: nil, metrics: metrics))
        }
        if let spent = await usage.exceeded {
            return .complete(.failed(spent.jobError(stopped: true), result: nil, metrics: metrics))
        }
        let end = ProcessEnd(report.termination, limits: limits)
        if let failure = AgentOutcome.failure(stream: summary, termination: end, stderrTail: report.stderrTail, usage: report.usage) {
            let text = summary.result?["result"]?.stringValue
            return .complete(.failed(failure, result: text.map { .object(["text": .string($0)]) }, metrics: metrics))
        }
        let quota = (try? await store.limits(of: job.userID)).flatMap(DiskQuota.init)
        return .complete(await ResultBuilder(workspaces: workspaces, logger: logger, quota: quota)
            .complete(job: job, request: request, profile: profile, run: run, stream: summary, metrics: metrics))
    }

    private func finish(_ job: JobRecord, owner: String, _ completion: JobCompletion, logger: Logger) async {
        do {
            let done = try await store.complete(job.id, owner: owner, with: completion)
            logger.info("job finished", metadata: ["status": "\(done.status.rawValue)", "error": "\(done.error?.code.rawValue ?? "-")"])
        } catch {
            logger.warning("could not complete job", metadata: ["error": "\(error)"])
        }
    }

    private func agentEnvironment() -> [String: String] {
        var environment = [
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
        ]
        // The model's URL and key are the gateway's business (AgentSession): the agent gets
        // a loopback URL and a placeholder key, never the worker's real key.
        environment.merge(configuration.agentEnvironment) { _, new in new }
        return environment
    }

    static func metrics(job: JobRecord, report: ProcessReport, stream: AgentStream, gateway: GatewayUsage) -> JSONValue {
        let result = stream.result
        let usage = result?["usage"]
        let queueMs = job.startedAt.map { max(0, $0.timeIntervalSince(job.createdAt) * 1000) } ?? 0
        let (seconds, attoseconds) = report.duration.components
        let metrics: [String: JSONValue] = [
            "queue_ms": .number(queueMs.rounded()),
            "duration_ms": .number(Double(seconds * 1000 + attoseconds / 1_000_000_000_000_000)),
            "api_ms": result?["duration_api_ms"] ?? .null,
            "ttft_ms": result?["ttft_ms"] ?? .null,
            "input_tokens": usage?["input_tokens"] ?? .number(0),
            "output_tokens": usage?["output_tokens"] ?? .number(0),
            "cache_read_tokens": usage?["cache_read_input_tokens"] ?? .number(0),
            "cost_usd": result?["total_cost_usd"] ?? .number(0),
            "turns": result?["num_turns"] ?? .number(0),
            "output_bytes": .number(Double(report.outputBytes)),
            "cpu_ms": report.usage.map { .number(Double($0.cpuMs)) } ?? .null,
            "peak_memory_bytes": report.usage.map { .number(Double($0.maxRSSBytes)) } ?? .null,
            "exit_code": report.exitCode.map { .number(Double($0)) } ?? .null,
            "model_requests": .number(Double(gateway.requests)),
        ]
        return .object(metrics)
    }
}

extension ProcessEnd {
    init(_ termination: Termination, limits: SupervisionLimits) {
        switch termination {
        case .exited(let code): self = .exited(code)
        case .signaled(let signal): self = .signaled(signal)
        case .wallClockTimeout: self = .wallClockTimeout(seconds: Int(limits.wallClock.components.seconds))
        case .idleTimeout: self = .idleTimeout(seconds: Int(limits.idle.components.seconds))
        case .outputLimit: self = .outputLimit(bytes: limits.maxOutputBytes)
        case .limitExceeded(let limit, let amount): self = .limitExceeded(limit: limit, amount: amount)
        case .launchFailed(let reason): self = .launchFailed(reason)
        case .cancelled: self = .signaled(9)
        }
    }
}

extension Logger {
    func with(_ metadata: Logger.Metadata) -> Logger {
        var copy = self
        for (key, value) in metadata { copy[metadataKey: key] = value }
        return copy
    }
}
