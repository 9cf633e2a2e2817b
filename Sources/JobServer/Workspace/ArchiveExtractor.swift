import NIOCore
import Queue

/// Extracts a validated tar.gz stream into an empty staging directory.
enum ArchiveExtractor {
    /// Inflates (bounded) and reads (strictly) `archive`, writing each accepted entry below
    /// `staging` as it goes. Throws on the first problem; the caller discards the staging
    /// directory then, so a rejected archive never changes the project.
    static func extract(_ archive: ByteBuffer, into staging: Descriptor, limits: WorkspaceLimits) throws(JobError) -> ArchiveSummary {
        let source = try GunzipSource(archive, limit: limits.maxArchiveBytes)
        var reader = TarReader(source, limits: limits)
        var summary = ArchiveSummary(files: 0, directories: 0, bytes: 0)
        while let entry = try reader.next() {
            let parent = try WorkspaceTree.openParent(of: entry.path, in: staging, create: true)
            let name = entry.path.lastComponent
            try WorkspaceErrors.mapping(path: entry.path.rawValue) {
                switch entry.kind {
                case .directory:
                    let directory = try parent.openOrMakeDirectory(name)
                    try directory.setPermissions((entry.permissions & 0o777) | 0o700)
                    summary.directories += 1
                case .file:
                    let file = try parent.createFile(name, permissions: 0o600)
                    try file.writeAll(entry.bytes)
                    try file.setPermissions((entry.permissions & 0o777) | 0o600)
                    try file.sync()
                    summary.files += 1
                    summary.bytes += Int64(entry.bytes.count)
                }
            }
        }
        return summary
    }
}
