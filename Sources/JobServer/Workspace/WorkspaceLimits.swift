import Queue

/// Size and count limits of one project workspace.
///
/// They bound what a single user can make the server store, read into memory or decompress.
/// One oversized file is `E004 FILE_ACCESS` with `details.limit`; going over the project
/// quota (files or bytes) is `E008 RESOURCE_LIMIT`.
public struct WorkspaceLimits: Sendable, Hashable, Codable {
    /// Largest single file, in bytes (default 16 MiB).
    public var maxFileBytes: Int
    /// Most regular files in one project (default 10 000).
    public var maxFilesPerProject: Int
    /// Most bytes of regular-file content in one project (default 256 MiB).
    public var maxProjectBytes: Int
    /// Most bytes an uploaded archive may decompress to, headers and padding included.
    /// Past it the upload is refused as an archive bomb (`E004 "archive too large"`).
    public var maxArchiveBytes: Int

    public init(maxFileBytes: Int = 16 << 20, maxFilesPerProject: Int = 10_000,
                maxProjectBytes: Int = 256 << 20, maxArchiveBytes: Int? = nil) {
        self.maxFileBytes = maxFileBytes
        self.maxFilesPerProject = maxFilesPerProject
        self.maxProjectBytes = maxProjectBytes
        // Content plus, per entry, a header, a possible pax/long-name header and padding.
        self.maxArchiveBytes = maxArchiveBytes ?? (maxProjectBytes + maxFilesPerProject * 2 * 3 * 512 + (1 << 20))
    }

    /// The `E004` for one file above `maxFileBytes`.
    func fileTooLarge(_ path: String, size: Int64) -> JobError {
        JobError(.fileAccess,
                 "file \(WorkspacePathText.quoted(path)) is \(size) bytes, above the per-file limit of \(maxFileBytes) bytes",
                 details: .object(["path": .string(path), "limit": .number(Double(maxFileBytes)), "bytes": .number(Double(size))]))
    }

    /// The `E008` for a project that would hold too many files.
    func tooManyFiles(_ count: Int) -> JobError {
        JobError(.resourceLimit,
                 "project would hold \(count) files, above the limit of \(maxFilesPerProject) files",
                 details: .object(["limit": .number(Double(maxFilesPerProject)), "files": .number(Double(count))]))
    }

    /// The `E008` for a project that would hold too many bytes.
    func tooManyBytes(_ bytes: Int64) -> JobError {
        JobError(.resourceLimit,
                 "project would hold \(bytes) bytes, above the quota of \(maxProjectBytes) bytes",
                 details: .object(["limit": .number(Double(maxProjectBytes)), "bytes": .number(Double(bytes))]))
    }
}
