import AsyncHTTPClient
import Foundation
import Logging
import Queue
import Sandbox
import ServiceLifecycle

/// `jobserver worker`: claims jobs and runs them, `concurrency` at a time.
///
/// Idle slots sleep on the store's `.queue` channel and wake when a submission commits, so a
/// job starts within milliseconds without polling. On graceful shutdown (SIGTERM) the worker
/// stops claiming, lets running jobs finish for up to `shutdownGrace`, then stops their agents
/// and releases their leases so other workers pick them up without losing an attempt.
public struct Worker: Service {
    let store: any JobStore
    let runner: JobRunner
    let configuration: WorkerConfiguration
    let owner: String
    let logger: Logger

    /// - Parameter httpClient: the process's client for the model upstream, shared by every
    ///   job's gateway (configure it with `GatewayConfiguration.httpClientConfiguration()`).
    public init(store: any JobStore, workspaces: WorkspaceStore, launcher: any AgentLauncher, httpClient: HTTPClient,
                configuration: WorkerConfiguration, runsDirectory: String, logger: Logger) {
        self.store = store
        self.configuration = configuration
        self.owner = "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UUID().uuidString.prefix(8).lowercased())"
        self.logger = logger
        self.runner = JobRunner(store: store, workspaces: workspaces, launcher: launcher, httpClient: httpClient,
                                configuration: configuration,
                                runsDirectory: runsDirectory, logger: logger)
    }

    public func run() async throws {
        let shutdown = ShutdownSignal()
        logger.info("worker started", metadata: ["owner": "\(owner)", "concurrency": "\(configuration.concurrency)"])
        await withGracefulShutdownHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await reapExpiredLeases(until: shutdown) }
                for _ in 0..<max(1, configuration.concurrency) {
                    group.addTask { await slot(shutdown: shutdown) }
                }
                await group.waitForAll()
            }
        } onGracefulShutdown: {
            shutdown.set()
        }
        logger.info("worker stopped", metadata: ["owner": "\(owner)"])
    }

    private func slot(shutdown: ShutdownSignal) async {
        let feed = store.changes
        while !shutdown.isSet, !Task.isCancelled {
            let generation = feed.generation(of: .queue)
            let cancelGeneration = feed.generation(of: .cancel)
            let job: JobRecord?
            do {
                job = try await store.claim(owner: owner, lease: configuration.lease)
            } catch {
                logger.error("claim failed", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            guard let job else {
                await feed.wait(for: .queue, after: generation, timeout: .milliseconds(500))
                continue
            }
            let interruption = JobInterruption()
            await withTaskGroup(of: Void.self) { group in
                // Past the grace period after a shutdown began, take the job back.
                group.addTask {
                    await shutdown.wait()
                    guard !Task.isCancelled else { return }
                    try? await Task.sleep(for: configuration.shutdownGrace)
                    guard !Task.isCancelled else { return }
                    interruption.release()
                }
                await runner.run(job, owner: owner, cancelGeneration: cancelGeneration, interruption: interruption)
                group.cancelAll()
            }
        }
    }

    private func reapExpiredLeases(until shutdown: ShutdownSignal) async {
        let period = configuration.lease / 2
        while !shutdown.isSet, !Task.isCancelled {
            do {
                let recovered = try await store.recoverExpiredLeases()
                if recovered > 0 { logger.notice("recovered expired leases", metadata: ["count": "\(recovered)"]) }
            } catch {
                logger.warning("lease recovery failed", metadata: ["error": "\(error)"])
            }
            await withTaskGroup(of: Void.self) { group in
                group.addTask { try? await Task.sleep(for: period) }
                group.addTask { await shutdown.wait() }
                await group.next()
                group.cancelAll()
            }
        }
    }
}
