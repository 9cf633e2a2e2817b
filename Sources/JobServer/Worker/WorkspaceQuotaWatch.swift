import Foundation

/// Watches the size of a running job's workspace and reports once it is over the project
/// quota, so the worker stops the agent (`E008`, `details.limit` = `workspace_bytes`) instead
/// of letting it fill the disk. The workspace is a bind of a host directory, which has no
/// quota of its own: this is a polled bound (every `interval`), on top of the per-file size
/// rlimit; what is over the quota at the end is refused again when the change is applied.
struct WorkspaceQuotaWatch: Sendable {
    let path: String
    let limitBytes: Int64
    var interval: Duration = .milliseconds(500)

    /// Runs until cancelled, or until the first breach, which it reports with the size seen.
    func run(onBreach: @Sendable (Int64) -> Void) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: interval)
            if Task.isCancelled { return }
            // A directory walk: on the blocking pool, not on a thread of the cooperative pool.
            guard let bytes = try? await BlockingIO.run({ [path] in Self.size(of: path) }) else { continue }
            if bytes > limitBytes {
                onBreach(bytes)
                return
            }
        }
    }

    /// Bytes of regular files below `path`, not following symbolic links.
    static func size(of path: String) -> Int64 {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total: Int64 = 0
        while let relative = walker.nextObject() as? String {
            var info = stat()
            if lstat(path + "/" + relative, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG {
                total += Int64(info.st_size)
            }
        }
        return total
    }
}
