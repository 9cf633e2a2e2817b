import Foundation
import Logging
import Queue

/// Builds a successful agent run's result (DESIGN §4): the text, the change set with its patch,
/// the structured analysis or findings; applies the change unless `dry_run`.
struct ResultBuilder: Sendable {
    let workspaces: WorkspaceStore
    let logger: Logger
    /// The user's disk quota the applied change must fit.
    var quota: DiskQuota?

    func complete(
        job: JobRecord, request: JobRequest, profile: AgentProfile, run: RunDirectory,
        stream: AgentStream, metrics: JSONValue
    ) async -> JobCompletion {
        let text = stream.result?["result"]?.stringValue ?? ""
        var result: [String: JSONValue] = ["text": .string(text)]

        let changes: ChangeSet
        do {
            changes = try await BlockingIO.run { [workspaces] in
                try ChangeSet.compute(base: run.base, work: run.work, limits: workspaces.limits)
            }
        } catch {
            let jobError = (error as? JobError) ?? JobError(.internal, "could not compute the job's changes: \(error)")
            return .failed(jobError, result: .object(result), metrics: metrics)
        }
        if profile.writes {
            result["files"] = (try? JSONValue.encode(changes.files)) ?? .array([])
            result["patch"] = .string(changes.patch)
        } else {
            // Read-only kinds have no write tools; anything that changed anyway is dropped.
            result["files"] = .array([])
            result["patch"] = .string("")
            if !changes.files.isEmpty {
                logger.warning("read-only job changed files; changes discarded", metadata: ["count": "\(changes.files.count)"])
            }
        }

        switch profile.structured {
        case .none:
            break
        case .analysis:
            guard let object = StructuredResult.extract(from: text) else {
                return .failed(JobError(.agentError, "the agent did not end with the requested JSON analysis"),
                               result: .object(result), metrics: metrics)
            }
            result["analysis"] = object["analysis"] ?? .object(object)
            result["summary"] = object["summary"] ?? .null
            result["suggestions"] = object["suggestions"] ?? .array([])
        case .findings:
            guard let object = StructuredResult.extract(from: text),
                  let findings = StructuredResult.findings(object["findings"], minimum: request.options.severity) else {
                return .failed(JobError(.agentError, "the agent did not end with the requested JSON findings"),
                               result: .object(result), metrics: metrics)
            }
            result["findings"] = .array(findings)
            result["summary"] = object["summary"] ?? .null
        }

        let applies = profile.writes && !request.options.dryRun && !changes.files.isEmpty
        result["dry_run"] = .bool(request.options.dryRun)
        if applies {
            do {
                let project = try ProjectName(validating: request.project)
                try await BlockingIO.run { [workspaces, quota] in
                    try ChangeApplier(store: workspaces).apply(
                        changes, base: run.base, work: run.work, user: job.userID, project: project, quota: quota)
                }
                result["applied"] = .bool(true)
            } catch {
                result["applied"] = .bool(false)
                let jobError = (error as? JobError) ?? JobError(.fileAccess, "could not apply the job's changes: \(error)")
                return .failed(jobError, result: .object(result), metrics: metrics)
            }
        } else {
            result["applied"] = .bool(false)
        }
        return .succeeded(result: .object(result), metrics: metrics)
    }
}
