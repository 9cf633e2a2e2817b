import Queue

/// One changed file of a job (DESIGN §4 `result.files[]`).
public struct FileChange: Sendable, Hashable, Codable {
    public enum Action: String, Sendable, Hashable, Codable {
        case created, modified, deleted
    }

    /// Project-relative path.
    public var path: String
    public var action: Action
    /// This file's section of the unified patch (git header and hunks, or a git binary patch).
    public var diff: String
    /// Size of the file after the change (0 when deleted).
    public var bytes: Int64

    public init(path: String, action: Action, diff: String, bytes: Int64) {
        self.path = path
        self.action = action
        self.diff = diff
        self.bytes = bytes
    }
}

/// A path in the job's work copy that is not part of the change, and why.
public struct SkippedPath: Sendable, Hashable, Codable {
    public var path: String
    public var reason: String
}

/// What a job changed: the difference between its `base` copy (the project as the job found
/// it) and its `work` copy (after the agent ran).
///
/// Only regular files count. Symlinks, FIFOs, sockets, devices, names that are not UTF-8 or not
/// valid `RelativePath`s in `work` are listed in `skipped` and never applied (a symlink where a
/// file was in `base` is skipped, not treated as a deletion). Nothing else is excluded — a
/// `.git` directory is compared like any other. Encoded with the DESIGN's snake_case keys.
public struct ChangeSet: Sendable, Hashable, Codable {
    /// Changed files, sorted by path.
    public var files: [FileChange]
    /// The whole change as one unified patch (the `diff` sections concatenated), appliable to
    /// the project root with `git apply` (or `patch -p1` for text).
    public var patch: String
    public var skipped: [SkippedPath]

    public init(files: [FileChange], patch: String, skipped: [SkippedPath] = []) {
        self.files = files
        self.patch = patch
        self.skipped = skipped
    }

    public var isEmpty: Bool { files.isEmpty }

    /// Compares the trees at `base` and `work` (absolute paths). Throws `E008` when `work`
    /// holds absurdly many entries, `E500` when git cannot run.
    public static func compute(base: String, work: String, limits: WorkspaceLimits = WorkspaceLimits()) throws(JobError) -> ChangeSet {
        let baseDirectory: Descriptor
        let workDirectory: Descriptor
        do {
            baseDirectory = try Descriptor.openDirectory(absolute: base, display: base)
            workDirectory = try Descriptor.openDirectory(absolute: work, display: work)
        } catch {
            throw WorkspaceErrors.map(error)
        }
        let maxEntries = limits.maxFilesPerProject * 4 + 1000
        let baseTree = try WorkspaceTree.walk(baseDirectory, maxEntries: maxEntries)
        let workTree = try WorkspaceTree.walk(workDirectory, maxEntries: maxEntries)

        var baseFiles: [String: FileStatus] = [:]
        for entry in baseTree where entry.validName && entry.status.kind == .regular {
            baseFiles[entry.path] = entry.status
        }
        var workFiles: [String: FileStatus] = [:]
        var skipped: [SkippedPath] = []
        var skippedPaths: Set<String> = []
        for entry in workTree {
            if !entry.validName {
                skipped.append(SkippedPath(path: entry.path, reason: "name is not valid UTF-8"))
            } else if entry.status.kind == .directory {
                continue
            } else if entry.status.kind != .regular {
                let reason = entry.status.kind == .symlink
                    ? "symbolic link (links are never followed or applied)"
                    : "\(entry.status.kind.label) (only regular files are applied)"
                skipped.append(SkippedPath(path: entry.path, reason: reason))
            } else if let problem = RelativePath.problem(with: entry.path) {
                skipped.append(SkippedPath(path: entry.path, reason: "invalid path: \(problem)"))
            } else {
                workFiles[entry.path] = entry.status
                continue
            }
            skippedPaths.insert(entry.path)
        }

        var files: [FileChange] = []
        let allPaths = Set(baseFiles.keys).union(workFiles.keys).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for path in allPaths {
            let old = baseFiles[path]
            let new = workFiles[path]
            let action: FileChange.Action
            switch (old, new) {
            case (nil, .some): action = .created
            case (.some, nil):
                if skippedPaths.contains(path) { continue }
                action = .deleted
            case (.some(let a), .some(let b)):
                if a.size == b.size, try sameContents(path, baseDirectory, workDirectory) { continue }
                action = .modified
            case (nil, nil): continue
            }
            let diff = try GitDiff.section(path: path,
                                           old: action == .created ? nil : base + "/" + path,
                                           new: action == .deleted ? nil : work + "/" + path)
            files.append(FileChange(path: path, action: action, diff: diff, bytes: action == .deleted ? 0 : new?.size ?? 0))
        }
        return ChangeSet(files: files, patch: files.map(\.diff).joined(), skipped: skipped)
    }

    /// Byte comparison of `path` in two trees, in chunks, without following symlinks.
    static func sameContents(_ path: String, _ left: Descriptor, _ right: Descriptor) throws(JobError) -> Bool {
        guard let relative = RelativePath(rawValue: path) else { return false }
        do {
            let leftFile = try WorkspaceTree.openParent(of: relative, in: left, create: false).openForReading(relative.lastComponent)
            let rightFile = try WorkspaceTree.openParent(of: relative, in: right, create: false).openForReading(relative.lastComponent)
            guard try leftFile.status().kind == .regular, try rightFile.status().kind == .regular else { return false }
            var a = [UInt8](repeating: 0, count: 1 << 16)
            var b = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let countA = try readFull(leftFile, &a)
                let countB = try readFull(rightFile, &b)
                if countA != countB || a[0..<countA] != b[0..<countB] { return false }
                if countA == 0 { return true }
            }
        } catch {
            throw WorkspaceErrors.map(any: error, path: path)
        }
    }

    /// Fills `buffer` unless end of file comes first; returns the byte count.
    private static func readFull(_ file: Descriptor, _ buffer: inout [UInt8]) throws -> Int {
        var total = 0
        var chunk = [UInt8](repeating: 0, count: buffer.count)
        while total < buffer.count {
            chunk = [UInt8](repeating: 0, count: buffer.count - total)
            let count = try file.read(into: &chunk)
            if count == 0 { break }
            buffer.replaceSubrange(total..<(total + count), with: chunk[0..<count])
            total += count
        }
        return total
    }
}
