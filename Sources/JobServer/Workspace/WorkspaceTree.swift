#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Queue

/// Turns low-level failures into the service's `JobError`s.
enum WorkspaceErrors {
    /// Maps a failed system call on the workspace-relative `path` to a `JobError`.
    static func map(_ error: FileSystemError, path: String? = nil) -> JobError {
        let shown = WorkspacePathText.quoted(path ?? error.path)
        let details: JSONValue = .object(["path": .string(path ?? error.path)])
        switch error.code {
        case ENOENT: return JobError(.notFound, "no such file or directory: \(shown)", details: details)
        case ELOOP: return JobError(.fileAccess, "\(shown) is a symbolic link; symbolic links are never followed", details: details)
        case ENOTDIR: return JobError(.fileAccess, "a component of \(shown) is not a directory", details: details)
        case EISDIR: return JobError(.fileAccess, "\(shown) is a directory", details: details)
        case EACCES, EPERM: return JobError(.fileAccess, "permission denied: \(shown)", details: details)
        case ENAMETOOLONG: return JobError(.fileAccess, "name too long: \(shown)", details: details)
        case EFBIG: return JobError(.fileAccess, "file too large: \(shown)", details: details)
        case EEXIST: return JobError(.conflict, "\(shown) already exists", details: details)
        case ENOTEMPTY: return JobError(.conflict, "directory \(shown) is not empty", details: details)
        case ENOSPC, EDQUOT: return JobError(.resourceLimit, "no space left on the workspace volume", details: details)
        default: return JobError(.internal, "workspace I/O failed: \(error.description)")
        }
    }

    /// Passes a `JobError` through and maps anything else.
    static func map(any error: any Error, path: String? = nil) -> JobError {
        if let error = error as? JobError { return error }
        if let error = error as? FileSystemError { return map(error, path: path) }
        return JobError(.internal, "workspace operation failed: \(error)")
    }

    /// Runs `body`, converting every error it throws into a `JobError`.
    static func mapping<T>(path: String? = nil, _ body: () throws -> T) throws(JobError) -> T {
        do { return try body() } catch { throw map(any: error, path: path) }
    }
}

/// One entry found by `WorkspaceTree.walk`.
struct TreeEntry: Sendable, Hashable {
    /// Path relative to the walked root, components joined with `/` (lossily decoded when
    /// `validName` is false).
    var path: String
    var status: FileStatus
    /// False when some component of the name is not valid UTF-8.
    var validName: Bool
}

/// Symlink-safe navigation of a directory tree through `openat`.
enum WorkspaceTree {
    /// Opens the directory that contains `path` under `root`, one component at a time with
    /// `O_NOFOLLOW|O_DIRECTORY`. A component that is a symlink or a file is `E004`; a missing
    /// one is created when `create`, else `E013`.
    static func openParent(of path: RelativePath, in root: Descriptor, create: Bool) throws(JobError) -> Descriptor {
        var current = root
        let components = path.components
        var walked: [String] = []
        for component in components.dropLast() {
            walked.append(component)
            let shown = walked.joined(separator: "/")
            do {
                current = try create ? current.openOrMakeDirectory(component) : current.openDirectory(component)
            } catch {
                if error.code == ELOOP || error.code == ENOTDIR || error.code == EEXIST {
                    let kind = (try? current.status(of: component))??.kind
                    if kind == .symlink {
                        throw JobError(.fileAccess,
                                       "path component \(WorkspacePathText.quoted(shown)) of \(WorkspacePathText.quoted(path.rawValue)) is a symbolic link; symbolic links are never followed",
                                       details: .object(["path": .string(path.rawValue), "component": .string(shown)]))
                    }
                    throw JobError(.fileAccess,
                                   "path component \(WorkspacePathText.quoted(shown)) of \(WorkspacePathText.quoted(path.rawValue)) is a \(kind?.label ?? "file"), not a directory",
                                   details: .object(["path": .string(path.rawValue), "component": .string(shown)]))
                }
                if error.code == ENOENT {
                    throw JobError(.notFound, "no such file: \(WorkspacePathText.quoted(path.rawValue))",
                                   details: .object(["path": .string(path.rawValue)]))
                }
                throw WorkspaceErrors.map(error)
            }
        }
        return current
    }

    /// `lstat` of `path`'s last component inside its (already opened) parent, refusing links.
    static func regularFileStatus(of path: RelativePath, in parent: Descriptor) throws(JobError) -> FileStatus? {
        let status: FileStatus?
        do { status = try parent.status(of: path.lastComponent) } catch { throw WorkspaceErrors.map(error, path: path.rawValue) }
        guard let status else { return nil }
        switch status.kind {
        case .regular: return status
        case .symlink:
            throw JobError(.fileAccess, "\(WorkspacePathText.quoted(path.rawValue)) is a symbolic link; symbolic links are never followed",
                           details: .object(["path": .string(path.rawValue)]))
        case .directory:
            throw JobError(.fileAccess, "\(WorkspacePathText.quoted(path.rawValue)) is a directory, not a file",
                           details: .object(["path": .string(path.rawValue)]))
        default:
            throw JobError(.fileAccess, "\(WorkspacePathText.quoted(path.rawValue)) is a \(status.kind.label), not a regular file",
                           details: .object(["path": .string(path.rawValue)]))
        }
    }

    /// Reads a regular file (never through a symlink, never a FIFO or device), up to `limit` bytes.
    static func readRegularFile(_ name: String, in parent: Descriptor, display: String, limit: Int) throws(JobError) -> [UInt8] {
        do {
            let file = try parent.openForReading(name)
            let status = try file.status()
            guard status.kind == .regular else {
                throw JobError(.fileAccess, "\(WorkspacePathText.quoted(display)) is a \(status.kind.label), not a regular file",
                               details: .object(["path": .string(display)]))
            }
            if status.size > Int64(limit) {
                throw JobError(.fileAccess, "\(WorkspacePathText.quoted(display)) is \(status.size) bytes, above the per-file limit of \(limit) bytes",
                               details: .object(["path": .string(display), "limit": .number(Double(limit))]))
            }
            return try file.readAll(limit: limit)
        } catch let error as JobError {
            throw error
        } catch let error as FileSystemError {
            if error.code == ELOOP {
                throw JobError(.fileAccess, "\(WorkspacePathText.quoted(display)) is a symbolic link; symbolic links are never followed",
                               details: .object(["path": .string(display)]))
            }
            throw WorkspaceErrors.map(error, path: display)
        } catch {
            throw WorkspaceErrors.map(any: error, path: display)
        }
    }

    /// Every entry below `root`, depth first, sorted by path bytes; directories are descended
    /// through `O_NOFOLLOW` so a symlink is reported as one and never entered. Throws `E008`
    /// past `maxEntries` entries, so a hostile tree cannot exhaust memory.
    static func walk(_ root: Descriptor, maxEntries: Int = 1_000_000) throws(JobError) -> [TreeEntry] {
        var result: [TreeEntry] = []
        do {
            try walk(root, prefix: "", valid: true, depth: 0, maxEntries: maxEntries, into: &result)
        } catch let error as JobError {
            throw error
        } catch {
            throw WorkspaceErrors.map(any: error)
        }
        return result
    }

    private static func walk(_ dir: Descriptor, prefix: String, valid: Bool, depth: Int, maxEntries: Int,
                             into result: inout [TreeEntry]) throws {
        guard depth < 512 else {
            throw JobError(.fileAccess, "directory tree deeper than 512 levels at \(WorkspacePathText.quoted(prefix))")
        }
        for raw in try dir.rawEntryNames() {
            let decoded = String(validating: raw, as: UTF8.self)
            let name = decoded ?? String(decoding: raw, as: UTF8.self)
            let path = prefix.isEmpty ? name : prefix + "/" + name
            let entryValid = valid && decoded != nil
            guard result.count < maxEntries else {
                throw JobError(.resourceLimit, "directory tree has more than \(maxEntries) entries",
                               details: .object(["limit": .number(Double(maxEntries))]))
            }
            guard entryValid, let status = try dir.status(of: name) else {
                // A name that is not UTF-8 cannot be addressed through the API; report it.
                result.append(TreeEntry(path: path, status: FileStatus(stat()), validName: false))
                continue
            }
            result.append(TreeEntry(path: path, status: status, validName: true))
            if status.kind == .directory {
                let child = try dir.openDirectory(name)
                try walk(child, prefix: path, valid: entryValid, depth: depth + 1, maxEntries: maxEntries, into: &result)
            }
        }
    }
}
