import Foundation
import Queue

/// What a snapshot copied and what it left out.
public struct SnapshotSummary: Sendable, Hashable, Codable {
    public var files: Int = 0
    public var directories: Int = 0
    public var bytes: Int64 = 0
    /// Paths not copied (symlinks, FIFOs, sockets, devices, names that are not UTF-8).
    public var skipped: [String] = []
}

/// Copies a project tree for a job: `base` (what the job started from) and `work` (what the
/// agent may change).
///
/// Only directories and regular files are copied, with their permission bits (minus
/// setuid/setgid/sticky); symlinks are never followed nor copied, so a link in the source can
/// neither leak outside data into the copy nor be planted into it.
public enum WorkspaceSnapshot {
    /// Copies the directory at `source` into a new directory `destination` (which must not
    /// exist; its parent must). `E004` when `source` is a symlink, `E013` when it is missing.
    @discardableResult
    public static func copy(from source: String, to destination: String) throws(JobError) -> SnapshotSummary {
        let sourceDirectory: Descriptor
        do {
            sourceDirectory = try Descriptor.openDirectory(absolute: source, display: source)
        } catch {
            throw WorkspaceErrors.map(error, path: source)
        }
        return try copy(from: sourceDirectory, to: destination)
    }

    static func copy(from source: Descriptor, to destination: String) throws(JobError) -> SnapshotSummary {
        let url = URL(fileURLWithPath: destination)
        let parentPath = url.deletingLastPathComponent().path
        let name = url.lastPathComponent
        var summary = SnapshotSummary()
        do {
            let parent = try Descriptor.openDirectory(absolute: parentPath, display: parentPath)
            guard try parent.makeDirectory(name, permissions: 0o755) else {
                throw JobError(.conflict, "snapshot destination \(WorkspacePathText.quoted(destination)) already exists")
            }
            let target = try parent.openDirectory(name)
            try target.setPermissions((try source.status().permissions & 0o777) | 0o700)
            try copyContents(of: source, to: target, prefix: "", summary: &summary)
        } catch {
            throw WorkspaceErrors.map(any: error, path: destination)
        }
        return summary
    }

    private static func copyContents(of source: Descriptor, to target: Descriptor, prefix: String,
                                     summary: inout SnapshotSummary) throws {
        for raw in try source.rawEntryNames() {
            guard let name = String(validating: raw, as: UTF8.self) else {
                summary.skipped.append(prefix + String(decoding: raw, as: UTF8.self))
                continue
            }
            let path = prefix + name
            guard let status = try source.status(of: name) else { continue }
            switch status.kind {
            case .directory:
                let from = try source.openDirectory(name)
                try target.makeDirectory(name, permissions: 0o700)
                let to = try target.openDirectory(name)
                try copyContents(of: from, to: to, prefix: path + "/", summary: &summary)
                try to.setPermissions((status.permissions & 0o777) | 0o700)
                summary.directories += 1
            case .regular:
                let from = try source.openForReading(name)
                guard try from.status().kind == .regular else {
                    summary.skipped.append(path)
                    continue
                }
                let to = try target.createFile(name, permissions: 0o600)
                try copyBytes(from: from, to: to)
                try to.setPermissions(status.permissions & 0o777)
                summary.files += 1
                summary.bytes += status.size
            default:
                summary.skipped.append(path)
            }
        }
    }

    private static func copyBytes(from source: Descriptor, to target: Descriptor) throws {
        // Chunked so memory stays flat whatever the file size.
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = try source.read(into: &buffer)
            if count == 0 { return }
            try target.writeAll(buffer[0..<count])
        }
    }
}

extension WorkspaceTree {
    /// Same as `WorkspaceSnapshot.copy(from:to:)` (the worker copies `base` to `work` with it).
    @discardableResult
    static func copy(from source: String, to destination: String) throws(JobError) -> SnapshotSummary {
        try WorkspaceSnapshot.copy(from: source, to: destination)
    }
}
