import Queue

/// Applies a job's change set to the live project, atomically and only if the project did not
/// change underneath the job (DESIGN §5 step 2).
///
/// Under the project lock: every changed path of the live project must still equal the job's
/// `base` copy (a file the job created must still be absent), otherwise `E014 CONFLICT` lists
/// the paths and nothing is applied. The resulting project must fit the quota (`E008`). New
/// contents come from the job's `work` copy; they are staged, journaled (`ApplyJournal`) and
/// then renamed into place, so a crash leaves all or nothing visible after recovery.
public struct ChangeApplier: Sendable {
    public let store: WorkspaceStore

    public init(store: WorkspaceStore) {
        self.store = store
    }

    /// Where a test stops an apply to simulate a crash.
    enum CrashPoint: Sendable, Equatable {
        case afterJournal
        case afterOperations(Int)
    }

    /// Applies `changes` (computed from `base` → `work`, both absolute paths of the job's
    /// copies) to `user`'s `project`, creating the project when needed. The result must also
    /// fit the user's disk `quota` (`E008`).
    public func apply(_ changes: ChangeSet, base: String, work: String, user: UserID, project: ProjectName,
                      quota: DiskQuota? = nil) throws(JobError) {
        try apply(changes, base: base, work: work, user: user, project: project, crash: nil, quota: quota)
    }

    /// Completes an interrupted apply, if one is pending. (Taking the project lock does this
    /// anyway; this is for start-up sweeps and tests.)
    public func recover(user: UserID, project: ProjectName) throws(JobError) {
        try store.withProjectLock(user: user, project: project) {}
    }

    func apply(_ changes: ChangeSet, base: String, work: String, user: UserID, project: ProjectName,
               crash: CrashPoint?, quota: DiskQuota? = nil) throws(JobError) {
        if changes.files.isEmpty { return }
        var paths: [(RelativePath, FileChange.Action)] = []
        var seen: Set<String> = []
        for change in changes.files {
            let path = try RelativePath(validating: change.path)
            guard seen.insert(path.rawValue).inserted else {
                throw JobError(.invalidRequest, "change set lists \(WorkspacePathText.quoted(path.rawValue)) twice")
            }
            paths.append((path, change.action))
        }
        let baseDirectory: Descriptor
        let workDirectory: Descriptor
        do {
            baseDirectory = try Descriptor.openDirectory(absolute: base, display: base)
            workDirectory = try Descriptor.openDirectory(absolute: work, display: work)
        } catch {
            throw WorkspaceErrors.map(error)
        }
        let limits = store.limits
        try store.withLockedProject(user: user, project: project) { locked throws(JobError) in
            guard let live = try locked.openProject(create: true) else { throw JobError(.internal, "project vanished") }
            let usage = try ProjectUsage.measure(live)

            // 1. Conflicts: the live project must still look like the job's base.
            var conflicts: [String] = []
            for (path, action) in paths {
                switch action {
                case .created:
                    if usage.files[path.rawValue] != nil { conflicts.append(path.rawValue) }
                case .modified, .deleted:
                    guard let size = usage.files[path.rawValue],
                          try ChangeApplier.liveMatchesBase(path, size: size, live: live, base: baseDirectory) else {
                        conflicts.append(path.rawValue)
                        continue
                    }
                }
            }
            // A created or modified file needs its place free: no remaining file as an
            // ancestor, no remaining file below it.
            let deleted = Set(paths.filter { $0.1 == .deleted }.map(\.0.rawValue))
            let written = paths.filter { $0.1 != .deleted }.map(\.0)
            var occupied: Set<String> = []
            for file in usage.files.keys where !deleted.contains(file) {
                var parent = RelativePath(rawValue: file)?.parent
                while let current = parent, occupied.insert(current.rawValue).inserted { parent = current.parent }
            }
            for path in written {
                var clash = occupied.contains(path.rawValue)
                var parent = path.parent
                while let current = parent, !clash {
                    if usage.files[current.rawValue] != nil && !deleted.contains(current.rawValue) { clash = true }
                    parent = current.parent
                }
                if clash && !conflicts.contains(path.rawValue) { conflicts.append(path.rawValue) }
            }
            if !conflicts.isEmpty {
                conflicts.sort()
                throw JobError(.conflict,
                               "the project changed while the job ran; \(conflicts.count) file(s) conflict: \(conflicts.prefix(20).joined(separator: ", "))",
                               details: .object(["paths": .array(conflicts.map { .string($0) })]))
            }

            // 2. Quota of the resulting project.
            var bytes = usage.totalBytes
            var count = usage.files.count
            var newSizes: [String: Int64] = [:]
            for (path, action) in paths {
                let old = usage.files[path.rawValue]
                if let old { bytes -= old; count -= 1 }
                if action != .deleted {
                    let parent = try WorkspaceTree.openParent(of: path, in: workDirectory, create: false)
                    guard let status = try WorkspaceTree.regularFileStatus(of: path, in: parent) else {
                        throw JobError(.notFound, "changed file \(WorkspacePathText.quoted(path.rawValue)) is missing from the job's work copy")
                    }
                    if status.size > Int64(limits.maxFileBytes) {
                        throw JobError(.resourceLimit,
                                       "file \(WorkspacePathText.quoted(path.rawValue)) is \(status.size) bytes, above the per-file limit of \(limits.maxFileBytes) bytes",
                                       details: .object(["path": .string(path.rawValue), "limit": .number(Double(limits.maxFileBytes))]))
                    }
                    newSizes[path.rawValue] = status.size
                    bytes += status.size
                    count += 1
                }
            }
            if count > limits.maxFilesPerProject { throw limits.tooManyFiles(count) }
            if bytes > Int64(limits.maxProjectBytes) { throw limits.tooManyBytes(bytes) }
            try quota?.check(bytes, user: user, project: project, in: store, upload: false)

            // 3. Stage new contents, then journal, then perform.
            let tmp = try locked.tmpDirectory()
            let stagingName = WorkspaceLayout.tempName(project, "apply")
            var operations: [ApplyJournal.Operation] = paths.filter { $0.1 == .deleted }.map {
                ApplyJournal.Operation(op: .delete, path: $0.0.rawValue, from: nil)
            }
            do {
                try WorkspaceErrors.mapping {
                    try tmp.makeDirectory(stagingName, permissions: 0o700)
                    let staging = try tmp.openDirectory(stagingName)
                    for (index, path) in written.enumerated() {
                        let source = try WorkspaceTree.openParent(of: path, in: workDirectory, create: false)
                            .openForReading(path.lastComponent)
                        let status = try source.status()
                        guard status.kind == .regular else {
                            throw JobError(.fileAccess, "\(WorkspacePathText.quoted(path.rawValue)) in the work copy is not a regular file")
                        }
                        let name = String(index)
                        let target = try staging.createFile(name, permissions: 0o600)
                        var buffer = [UInt8](repeating: 0, count: 1 << 16)
                        var copied: Int64 = 0
                        while true {
                            let n = try source.read(into: &buffer)
                            if n == 0 { break }
                            copied += Int64(n)
                            if copied > Int64(limits.maxFileBytes) {
                                throw JobError(.resourceLimit, "file \(WorkspacePathText.quoted(path.rawValue)) grew past the per-file limit while being applied")
                            }
                            try target.writeAll(buffer[0..<n])
                        }
                        try target.setPermissions(status.permissions & 0o777)
                        try target.sync()
                        operations.append(ApplyJournal.Operation(op: .rename, path: path.rawValue, from: name))
                    }
                    try staging.sync()
                }
            } catch {
                try? tmp.removeTree(stagingName)
                throw WorkspaceErrors.map(any: error)
            }
            let journal = ApplyJournal(staging: stagingName, operations: operations)
            try journal.write(locked)
            if crash == .afterJournal { return }
            if case .afterOperations(let count) = crash {
                try journal.execute(locked, stopAfter: count)
                return
            }
            try journal.execute(locked)
            try journal.finish(locked)
        }
    }

    /// Whether the live file at `path` (of `size` bytes) still has the base copy's contents.
    static func liveMatchesBase(_ path: RelativePath, size: Int64, live: Descriptor, base: Descriptor) throws(JobError) -> Bool {
        let parent: Descriptor
        do { parent = try WorkspaceTree.openParent(of: path, in: base, create: false) } catch {
            if error.code == .notFound || error.code == .fileAccess { return false }
            throw error
        }
        guard let status = try? WorkspaceTree.regularFileStatus(of: path, in: parent), status.size == size else { return false }
        return try ChangeSet.sameContents(path.rawValue, live, base)
    }
}

extension WorkspaceStore {
    /// Applies a job's change set to the project (see `ChangeApplier.apply`).
    public func apply(_ changes: ChangeSet, user: UserID, project: ProjectName, base: String, work: String) throws(JobError) {
        try ChangeApplier(store: self).apply(changes, base: base, work: work, user: user, project: project)
    }
}
