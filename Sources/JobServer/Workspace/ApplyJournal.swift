#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import Queue

/// The redo log of one change application: `<root>/<user>/.journal/<project>.json`.
///
/// The applier first stages every new file in `.tmp/<staging>/`, then writes (and fsyncs) this
/// journal, then performs its operations, then deletes it. Every operation is idempotent, so
/// when a crash leaves a journal behind, replaying it from the start (`recover`, run whenever
/// the project lock is taken) completes the apply: after recovery either none of the change
/// is visible (crash before the journal existed; the staging files are then just removed) or
/// all of it.
struct ApplyJournal: Codable, Sendable, Hashable {
    struct Operation: Codable, Sendable, Hashable {
        enum Kind: String, Codable, Sendable { case rename, delete }
        var op: Kind
        /// Project-relative target path.
        var path: String
        /// Name of the staged file inside the staging directory (renames only).
        var from: String?
    }

    var version = 1
    /// Name of the staging directory inside `.tmp`.
    var staging: String
    /// Deletes first, then renames: a directory emptied by the deletes can become a file.
    var operations: [Operation]

    static func fileName(_ project: ProjectName) -> String { project.rawValue + ".json" }

    /// Durably writes the journal (temp file, fsync, rename, fsync directory).
    func write(_ locked: LockedProject) throws(JobError) {
        let data: Data
        do { data = try JSONEncoder().encode(self) } catch { throw JobError(.internal, "cannot encode apply journal: \(error)") }
        try WorkspaceErrors.mapping {
            let directory = try locked.userDirectory.openOrMakeDirectory(WorkspaceLayout.journal)
            let tempName = WorkspaceLayout.tempName(locked.project, "journal")
            let file = try directory.createFile(tempName, permissions: 0o600)
            try file.writeAll(Array(data))
            try file.sync()
            try directory.rename(tempName, to: directory, as: ApplyJournal.fileName(locked.project))
            try directory.sync()
        }
    }

    /// Replays a leftover journal, if any, then removes it and its staging directory.
    static func recover(_ locked: LockedProject) throws(JobError) {
        let directory: Descriptor
        do {
            directory = try locked.userDirectory.openOrMakeDirectory(WorkspaceLayout.journal)
        } catch {
            throw WorkspaceErrors.map(error)
        }
        try WorkspaceErrors.mapping {
            // Stray temporary journals (crash while writing one) were never committed.
            for raw in try directory.rawEntryNames() {
                if let name = String(validating: raw, as: UTF8.self), WorkspaceLayout.isTempName(name, of: locked.project) {
                    try directory.remove(name)
                }
            }
        }
        let name = fileName(locked.project)
        guard try WorkspaceErrors.mapping({ try directory.status(of: name) }) != nil else { return }
        let bytes = try WorkspaceTree.readRegularFile(name, in: directory, display: ".journal/" + name, limit: 64 << 20)
        let journal: ApplyJournal
        do {
            journal = try JSONDecoder().decode(ApplyJournal.self, from: Data(bytes))
        } catch {
            throw JobError(.internal, "apply journal of project \(locked.project) is unreadable: \(error)")
        }
        try journal.execute(locked)
        try journal.finish(locked)
    }

    /// Performs the operations (idempotently: a rename whose staged file is gone and a delete
    /// whose target is gone were already done).
    func execute(_ locked: LockedProject, stopAfter: Int? = nil) throws(JobError) {
        guard WorkspaceLayout.isTempName(staging, of: locked.project), !staging.contains("/") else {
            throw JobError(.internal, "apply journal names a foreign staging directory")
        }
        guard let project = try locked.openProject(create: true) else { throw JobError(.internal, "project vanished") }
        let tmp = try locked.tmpDirectory()
        let stagingDirectory: Descriptor?
        do {
            stagingDirectory = try tmp.openDirectory(staging)
        } catch {
            if error.code != ENOENT { throw WorkspaceErrors.map(error) }
            stagingDirectory = nil
        }
        for (index, operation) in operations.enumerated() {
            if let stopAfter, index >= stopAfter { return }
            let path = try RelativePath(validating: operation.path)
            switch operation.op {
            case .delete:
                let parent: Descriptor
                do { parent = try WorkspaceTree.openParent(of: path, in: project, create: false) } catch {
                    if error.code == .notFound { continue }
                    throw error
                }
                try WorkspaceErrors.mapping(path: path.rawValue) {
                    if try parent.status(of: path.lastComponent)?.kind == .regular {
                        try parent.remove(path.lastComponent)
                        try parent.sync()
                    }
                }
            case .rename:
                guard let from = operation.from, !from.contains("/"), let stagingDirectory else { continue }
                guard try WorkspaceErrors.mapping({ try stagingDirectory.status(of: from) }) != nil else { continue }
                let parent = try WorkspaceTree.openParent(of: path, in: project, create: true)
                try WorkspaceErrors.mapping(path: path.rawValue) {
                    if try parent.status(of: path.lastComponent)?.kind == .directory {
                        // Only an empty directory tree may give way to a file (checked before applying).
                        try ApplyJournal.removeEmptyDirectory(parent, path.lastComponent)
                    }
                    try stagingDirectory.rename(from, to: parent, as: path.lastComponent)
                    try parent.sync()
                }
            }
        }
    }

    /// Removes the journal and the staging directory once everything is applied.
    func finish(_ locked: LockedProject) throws(JobError) {
        try WorkspaceErrors.mapping {
            let tmp = try locked.tmpDirectory()
            try tmp.removeTree(staging)
            let directory = try locked.userDirectory.openOrMakeDirectory(WorkspaceLayout.journal)
            do { try directory.remove(ApplyJournal.fileName(locked.project)) } catch let error as FileSystemError where error.code == ENOENT { _ = error }
            try directory.sync()
        }
    }

    /// `rmdir` of a directory containing only (recursively) empty directories.
    static func removeEmptyDirectory(_ parent: Descriptor, _ name: String) throws {
        let directory = try parent.openDirectory(name)
        for raw in try directory.rawEntryNames() {
            guard let child = String(validating: raw, as: UTF8.self), try directory.status(of: child)?.kind == .directory else {
                throw FileSystemError(call: "rmdir", path: directory.path, code: ENOTEMPTY)
            }
            try removeEmptyDirectory(directory, child)
        }
        try parent.remove(name, directory: true)
    }
}
