import Queue

/// A user's disk quota: the bytes of regular-file content of all their project workspaces
/// together (`UserLimits.diskQuotaBytes`), next to the per-project limits of `WorkspaceLimits`.
///
/// Checked under the lock of the project being written, against the other projects as they
/// are at that moment: two writes to two different projects of one user at the same instant
/// may overshoot the quota by at most one of them.
public struct DiskQuota: Sendable, Hashable {
    public var bytes: Int64

    public init(bytes: Int64) {
        self.bytes = bytes
    }

    /// The quota of `limits`, if it has one.
    public init?(_ limits: UserLimits) {
        guard let bytes = limits.diskQuotaBytes else { return nil }
        self.init(bytes: bytes)
    }

    /// Refuses `project` growing to `projectBytes` when the user's projects would then hold
    /// more than the quota: `E004` (HTTP 413) for an upload, `E008` for a job's change.
    func check(_ projectBytes: Int64, user: UserID, project: ProjectName, in store: WorkspaceStore,
               upload: Bool) throws(JobError) {
        let total = try store.userBytes(user: user, excluding: project) + projectBytes
        guard total > bytes else { return }
        let message = "the user's projects would hold \(total) bytes, above the disk quota of \(bytes) bytes"
        throw JobError(upload ? .fileAccess : .resourceLimit, message, details: .object([
            "limit": .number(Double(bytes)), "bytes": .number(Double(total)), "quota": .string("disk_quota_bytes"),
        ]))
    }
}

extension WorkspaceStore {
    /// Bytes of regular-file content in all of a user's projects but `excluded`.
    public func userBytes(user: UserID, excluding excluded: ProjectName? = nil) throws(JobError) -> Int64 {
        var total: Int64 = 0
        for project in try listProjects(user: user) where project != excluded {
            do {
                total += try ProjectUsage.measure(openProject(user: user, project: project)).totalBytes
            } catch {
                if error.code != .notFound { throw error }  // removed meanwhile
            }
        }
        return total
    }
}
