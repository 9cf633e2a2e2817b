import Foundation
import Hummingbird
import NIOCore
import Queue

/// Unauthenticated probes: `/healthz` (the process answers), `/readyz` (the store answers)
/// and `/metrics` (Prometheus text).
struct HealthController {
    let store: any JobStore
    let hub: JobEventHub

    func addRoutes(to router: Router<JobServerRequestContext>) {
        router.get("healthz") { _, _ in JSONBody.response(.object(["status": .string("ok")])) }
        router.get("readyz") { _, _ in
            do {
                try await store.ping()
                return JSONBody.response(.object(["status": .string("ready")]))
            } catch {
                throw APIError(.internal, "store not ready", status: .serviceUnavailable)
            }
        }
        router.get("metrics") { _, _ in
            let stats = try await store.stats()
            var text = "# HELP jobserver_jobs Jobs in the store by status.\n# TYPE jobserver_jobs gauge\n"
            for status in JobStatus.allCases {
                text += "jobserver_jobs{status=\"\(status.rawValue)\"} \(stats.counts[status] ?? 0)\n"
            }
            let age = stats.oldestQueuedAt.map { max(0, Date().timeIntervalSince($0)) } ?? 0
            text += "# HELP jobserver_oldest_queued_seconds Age of the oldest queued job.\n"
            text += "# TYPE jobserver_oldest_queued_seconds gauge\njobserver_oldest_queued_seconds \(age)\n"
            text += "# HELP jobserver_streamed_jobs Jobs this server process is streaming to clients right now.\n"
            text += "# TYPE jobserver_streamed_jobs gauge\njobserver_streamed_jobs \(hub.followedJobs)\n"
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: .init(byteBuffer: ByteBuffer(string: text)))
        }
    }
}
