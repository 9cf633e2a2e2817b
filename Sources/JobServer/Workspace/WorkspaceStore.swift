#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore
import Queue

/// One file of a project listing.
public struct WorkspaceFileInfo: Sendable, Hashable, Codable {
    public var path: String
    public var bytes: Int64
    public var modifiedAt: Date

    public init(path: String, bytes: Int64, modifiedAt: Date) {
        self.path = path
        self.bytes = bytes
        self.modifiedAt = modifiedAt
    }

    enum CodingKeys: String, CodingKey {
        case path, bytes
        case modifiedAt = "modified_at"
    }
}

/// What an archive upload stored.
public struct ArchiveSummary: Sendable, Hashable, Codable {
    public var files: Int
    public var directories: Int
    public var bytes: Int64
}

/// The users' persistent project workspaces on disk: `<root>/<user>/<project>/`.
///
/// Contract:
/// - Every path is resolved component by component with `openat(O_NOFOLLOW)`, so a symlink
///   placed inside a workspace (by an agent, by an archive — which refuses them — or by
///   anything else) can never make the API read or write outside it: a symlink component is
///   `E004`.
/// - Writes are atomic (temporary file + `rename`) and serialized per project by an `flock`
///   on `<root>/<user>/.locks/<project>.lock`; the same lock guards the change applier, and
///   acquiring it first completes an interrupted apply (journal redo).
/// - Limits (`WorkspaceLimits`) are enforced on every write.
/// - Every error is a `JobError`: bad paths `E004`, bad project names `E003` (at
///   `ProjectName` validation), missing project/file `E013`, quota `E008`.
///
/// Methods block on file-system calls and on the project lock; call them off latency-critical
/// executors when projects can be large.
public struct WorkspaceStore: Sendable {
    /// The directory holding every user's workspaces (`data/workspaces`).
    public let root: String
    public let limits: WorkspaceLimits

    public init(root: String, limits: WorkspaceLimits = WorkspaceLimits()) {
        self.root = root
        self.limits = limits
    }

    /// Absolute path of a project directory (for snapshotting into a sandbox).
    public func projectPath(user: UserID, project: ProjectName) throws(JobError) -> String {
        try root + "/" + WorkspaceUser.directoryName(user) + "/" + project.rawValue
    }

    // MARK: - Locking

    /// Runs `body` while holding the project's exclusive lock (the lock the change applier and
    /// every writer use). A pending apply journal left by a crash is replayed first and stale
    /// temporary files are removed, so `body` always sees a consistent project.
    public func withProjectLock<T>(user: UserID, project: ProjectName, _ body: () throws -> T) throws(JobError) -> T {
        try withLockedProject(user: user, project: project) { _ throws(JobError) -> T in
            do { return try body() } catch { throw WorkspaceErrors.map(any: error) }
        }
    }

    func withLockedProject<T>(user: UserID, project: ProjectName, _ body: (LockedProject) throws(JobError) -> T) throws(JobError) -> T {
        let userDirectory = try openUserDirectory(user, create: true)
        let lockFile: Descriptor
        do {
            let locks = try userDirectory.openOrMakeDirectory(WorkspaceLayout.locks)
            lockFile = try locks.openOrCreate(project.rawValue + ".lock", permissions: 0o600)
            try lockFile.lockExclusive()
        } catch {
            throw WorkspaceErrors.map(error)
        }
        let locked = LockedProject(store: self, user: user, project: project, userDirectory: userDirectory)
        return try withExtendedLifetime(lockFile) { () throws(JobError) -> T in
            try ApplyJournal.recover(locked)
            try locked.removeLeftovers()
            return try body(locked)
        }
    }

    func openUserDirectory(_ user: UserID, create: Bool) throws(JobError) -> Descriptor {
        let name = try WorkspaceUser.directoryName(user)
        do {
            if create {
                try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            }
            let rootDirectory = try Descriptor.openDirectory(absolute: root, display: "")
            return try create ? rootDirectory.openOrMakeDirectory(name) : rootDirectory.openDirectory(name)
        } catch let error as FileSystemError where error.code == ENOENT {
            throw JobError(.notFound, "no projects yet")
        } catch {
            throw WorkspaceErrors.map(any: error)
        }
    }

    /// Opens an existing project (no lock); `E013` when it does not exist.
    func openProject(user: UserID, project: ProjectName) throws(JobError) -> Descriptor {
        let missing = JobError(.notFound, "no such project \(WorkspacePathText.quoted(project.rawValue))",
                               details: .object(["project": .string(project.rawValue)]))
        let userDirectory: Descriptor
        do { userDirectory = try openUserDirectory(user, create: false) } catch { throw error.code == .notFound ? missing : error }
        do {
            return try userDirectory.openDirectory(project.rawValue)
        } catch {
            if error.code == ENOENT { throw missing }
            throw WorkspaceErrors.map(error, path: project.rawValue)
        }
    }

    // MARK: - Files

    /// Writes one file atomically, creating the project and parent directories as needed.
    /// Returns `true` when the file did not exist before. Throws `E004` (with `details.limit`)
    /// for a file above `maxFileBytes`, `E008` past the project quota, `E004` when a path
    /// component is a symlink or a file; `E004` (with `details.limit`) past the user's `quota`.
    @discardableResult
    public func putFile(user: UserID, project: ProjectName, path: RelativePath, bytes: [UInt8],
                        quota: DiskQuota? = nil) throws(JobError) -> Bool {
        if bytes.count > limits.maxFileBytes { throw limits.fileTooLarge(path.rawValue, size: Int64(bytes.count)) }
        return try withLockedProject(user: user, project: project) { locked throws(JobError) -> Bool in
            guard let projectDirectory = try locked.openProject(create: true) else {
                throw JobError(.internal, "project directory vanished")
            }
            let usage = try ProjectUsage.measure(projectDirectory)
            let old = usage.files[path.rawValue]
            if usage.directories.contains(path.rawValue) {
                throw JobError(.fileAccess, "\(WorkspacePathText.quoted(path.rawValue)) is a directory, not a file",
                               details: .object(["path": .string(path.rawValue)]))
            }
            let newCount = usage.files.count + (old == nil ? 1 : 0)
            if newCount > limits.maxFilesPerProject { throw limits.tooManyFiles(newCount) }
            let newBytes = usage.totalBytes - (old ?? 0) + Int64(bytes.count)
            if newBytes > Int64(limits.maxProjectBytes) { throw limits.tooManyBytes(newBytes) }
            try quota?.check(newBytes, user: user, project: project, in: self, upload: true)

            let parent = try WorkspaceTree.openParent(of: path, in: projectDirectory, create: true)
            let existing = try WorkspaceTree.regularFileStatus(of: path, in: parent)
            try AtomicFile.write(bytes, permissions: existing?.permissions ?? 0o644, into: parent,
                                 name: path.lastComponent, display: path.rawValue, via: locked)
            return existing == nil
        }
    }

    /// Reads one file. `E013` when the project or file is missing; `E004` for a symlink
    /// anywhere on the path, a directory, or a special file.
    public func readFile(user: UserID, project: ProjectName, path: RelativePath) throws(JobError) -> [UInt8] {
        let projectDirectory = try openProject(user: user, project: project)
        let parent = try WorkspaceTree.openParent(of: path, in: projectDirectory, create: false)
        return try WorkspaceTree.readRegularFile(path.lastComponent, in: parent, display: path.rawValue, limit: limits.maxFileBytes)
    }

    /// Whether `path` is an existing regular file of the project. `false` when the project or
    /// file is missing; `E004` when the path runs through a symlink or names a non-file.
    public func fileExists(user: UserID, project: ProjectName, path: RelativePath) throws(JobError) -> Bool {
        do {
            let projectDirectory = try openProject(user: user, project: project)
            let parent = try WorkspaceTree.openParent(of: path, in: projectDirectory, create: false)
            return try WorkspaceTree.regularFileStatus(of: path, in: parent) != nil
        } catch {
            if error.code == .notFound { return false }
            throw error
        }
    }

    /// Deletes one file. `E013` when it does not exist; `E004` for a symlink or a directory.
    public func deleteFile(user: UserID, project: ProjectName, path: RelativePath) throws(JobError) {
        try withLockedProject(user: user, project: project) { locked throws(JobError) in
            guard let projectDirectory = try locked.openProject(create: false) else {
                throw JobError(.notFound, "no such project \(WorkspacePathText.quoted(project.rawValue))",
                               details: .object(["project": .string(project.rawValue)]))
            }
            let parent = try WorkspaceTree.openParent(of: path, in: projectDirectory, create: false)
            guard try WorkspaceTree.regularFileStatus(of: path, in: parent) != nil else {
                throw JobError(.notFound, "no such file: \(WorkspacePathText.quoted(path.rawValue))",
                               details: .object(["path": .string(path.rawValue)]))
            }
            try WorkspaceErrors.mapping(path: path.rawValue) {
                try parent.remove(path.lastComponent)
                try parent.sync()
            }
        }
    }

    /// Regular files of a project, sorted by path (symlinks and special files are not listed).
    public func listFiles(user: UserID, project: ProjectName) throws(JobError) -> [WorkspaceFileInfo] {
        let projectDirectory = try openProject(user: user, project: project)
        return try WorkspaceTree.walk(projectDirectory, maxEntries: limits.maxFilesPerProject * 4 + 1000)
            .filter { $0.validName && $0.status.kind == .regular }
            .map { WorkspaceFileInfo(path: $0.path, bytes: $0.status.size, modifiedAt: Date(timeIntervalSince1970: $0.status.modifiedAt)) }
    }

    /// The user's projects, sorted by name; empty when the user has none.
    public func listProjects(user: UserID) throws(JobError) -> [ProjectName] {
        let userDirectory: Descriptor
        do { userDirectory = try openUserDirectory(user, create: false) } catch {
            if error.code == .notFound { return [] }
            throw error
        }
        return try WorkspaceErrors.mapping {
            try userDirectory.rawEntryNames().compactMap { raw -> ProjectName? in
                guard let text = String(validating: raw, as: UTF8.self), let name = ProjectName(rawValue: text),
                      try userDirectory.status(of: text)?.kind == .directory else { return nil }
                return name
            }
        }
    }

    /// Whether the project exists (as a real directory, not a symlink).
    public func projectExists(user: UserID, project: ProjectName) throws(JobError) -> Bool {
        do {
            _ = try openProject(user: user, project: project)
            return true
        } catch {
            if error.code == .notFound { return false }
            throw error
        }
    }

    // MARK: - Archives and snapshots

    /// The project as a gzip-compressed ustar archive of its directories and regular files
    /// (symlinks and special files are left out). Taken under the project lock, so it is a
    /// consistent picture.
    public func archive(user: UserID, project: ProjectName) throws(JobError) -> ByteBuffer {
        try withLockedProject(user: user, project: project) { locked throws(JobError) -> ByteBuffer in
            guard let projectDirectory = try locked.openProject(create: false) else {
                throw JobError(.notFound, "no such project \(WorkspacePathText.quoted(project.rawValue))",
                               details: .object(["project": .string(project.rawValue)]))
            }
            var writer = TarWriter()
            for entry in try WorkspaceTree.walk(projectDirectory, maxEntries: limits.maxFilesPerProject * 4 + 1000) where entry.validName {
                switch entry.status.kind {
                case .directory:
                    try writer.addDirectory(entry.path, permissions: entry.status.permissions, modifiedAt: entry.status.modifiedAt)
                case .regular:
                    guard let path = RelativePath(rawValue: entry.path) else { continue }
                    let parent = try WorkspaceTree.openParent(of: path, in: projectDirectory, create: false)
                    let bytes = try WorkspaceTree.readRegularFile(path.lastComponent, in: parent, display: path.rawValue,
                                                                  limit: limits.maxFileBytes)
                    try writer.addFile(entry.path, bytes: bytes, permissions: entry.status.permissions,
                                       modifiedAt: entry.status.modifiedAt)
                default:
                    continue
                }
            }
            return try Gzip.compress(writer.finish())
        }
    }

    /// Replaces the whole project with the contents of a tar.gz archive. The archive is
    /// validated strictly (`TarReader`) and extracted into a staging directory, which is then
    /// swapped in atomically; on any error the project is left exactly as it was. Past the
    /// user's `quota` it is `E004` (with `details.limit`).
    @discardableResult
    public func replaceWithArchive(user: UserID, project: ProjectName, archive: ByteBuffer,
                                   quota: DiskQuota? = nil) throws(JobError) -> ArchiveSummary {
        try withLockedProject(user: user, project: project) { locked throws(JobError) -> ArchiveSummary in
            let tmp = try locked.tmpDirectory()
            let stagingName = WorkspaceLayout.tempName(project, "upload")
            do {
                let staging = try WorkspaceErrors.mapping { () throws -> Descriptor in
                    try tmp.makeDirectory(stagingName)
                    return try tmp.openDirectory(stagingName)
                }
                let summary = try ArchiveExtractor.extract(archive, into: staging, limits: limits)
                try quota?.check(summary.bytes, user: user, project: project, in: self, upload: true)
                try WorkspaceErrors.mapping {
                    try staging.sync()
                    if try locked.userDirectory.status(of: project.rawValue) != nil {
                        if try !tmp.exchange(stagingName, with: locked.userDirectory, project.rawValue) {
                            let oldName = WorkspaceLayout.tempName(project, "old")
                            try locked.userDirectory.rename(project.rawValue, to: tmp, as: oldName)
                            try tmp.rename(stagingName, to: locked.userDirectory, as: project.rawValue)
                            try tmp.removeTree(oldName)
                        }
                    } else {
                        try tmp.rename(stagingName, to: locked.userDirectory, as: project.rawValue)
                    }
                    try locked.userDirectory.sync()
                    try tmp.removeTree(stagingName)
                }
                return summary
            } catch {
                try? tmp.removeTree(stagingName)
                throw WorkspaceErrors.map(any: error)
            }
        }
    }

    /// Copies the project (regular files and directories, mode bits kept, symlinks skipped)
    /// to a new directory `destination`, under the project lock. Used to make a job's `base`
    /// and `work` copies. A project that does not exist yet (a `generate` job's new project)
    /// gives an empty directory.
    @discardableResult
    public func snapshot(user: UserID, project: ProjectName, to destination: String) throws(JobError) -> SnapshotSummary {
        try withLockedProject(user: user, project: project) { locked throws(JobError) -> SnapshotSummary in
            guard let projectDirectory = try locked.openProject(create: false) else {
                try WorkspaceErrors.mapping(path: destination) {
                    try FileManager.default.createDirectory(atPath: destination, withIntermediateDirectories: false)
                }
                return SnapshotSummary()
            }
            return try WorkspaceSnapshot.copy(from: projectDirectory, to: destination)
        }
    }
}

/// How many files and bytes a project holds.
struct ProjectUsage {
    var files: [String: Int64] = [:]
    var directories: Set<String> = []
    var totalBytes: Int64 = 0

    static func measure(_ project: Descriptor) throws(JobError) -> ProjectUsage {
        var usage = ProjectUsage()
        for entry in try WorkspaceTree.walk(project) where entry.validName {
            switch entry.status.kind {
            case .regular:
                usage.files[entry.path] = entry.status.size
                usage.totalBytes += entry.status.size
            case .directory:
                usage.directories.insert(entry.path)
            default:
                continue
            }
        }
        return usage
    }
}

/// Atomic replacement of one file: write a temporary file in `.tmp`, `fsync`, `rename` over
/// the target, `fsync` the directory.
enum AtomicFile {
    static func write(_ bytes: [UInt8], permissions: UInt32, into parent: Descriptor, name: String,
                      display: String, via locked: LockedProject) throws(JobError) {
        let tmp = try locked.tmpDirectory()
        let tempName = WorkspaceLayout.tempName(locked.project, "put")
        do {
            let file = try tmp.createFile(tempName, permissions: 0o600)
            try file.writeAll(bytes)
            try file.setPermissions(permissions & 0o777)
            try file.sync()
            try tmp.rename(tempName, to: parent, as: name)
            try parent.sync()
        } catch {
            try? tmp.remove(tempName)
            throw WorkspaceErrors.map(error, path: display)
        }
    }
}
