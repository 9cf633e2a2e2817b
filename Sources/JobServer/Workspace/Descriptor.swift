#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// A failed system call: which call, on which (workspace-relative) path, and the `errno`.
///
/// Low-level workspace code throws this typed error; the store turns it into a `JobError`
/// with the right code (`WorkspaceErrors.map`) at its boundary.
public struct FileSystemError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The system call that failed (`"openat"`).
    public let call: String
    /// The path it was applied to, relative to the workspace when possible.
    public let path: String
    /// The `errno` value.
    public let code: Int32

    public init(call: String, path: String, code: Int32) {
        self.call = call
        self.path = path
        self.code = code
    }

    public var description: String { "\(call)(\(path)): \(String(cString: strerror(code)))" }
}

/// What `lstat` says an entry is. Symbolic links are reported, never followed.
enum FileKind: Sendable, Hashable {
    case regular, directory, symlink, fifo, socket, characterDevice, blockDevice, unknown

    init(mode: UInt32) {
        switch mode & UInt32(S_IFMT) {
        case UInt32(S_IFREG): self = .regular
        case UInt32(S_IFDIR): self = .directory
        case UInt32(S_IFLNK): self = .symlink
        case UInt32(S_IFIFO): self = .fifo
        case UInt32(S_IFSOCK): self = .socket
        case UInt32(S_IFCHR): self = .characterDevice
        case UInt32(S_IFBLK): self = .blockDevice
        default: self = .unknown
        }
    }

    var label: String {
        switch self {
        case .regular: "regular file"
        case .directory: "directory"
        case .symlink: "symbolic link"
        case .fifo: "FIFO"
        case .socket: "socket"
        case .characterDevice: "character device"
        case .blockDevice: "block device"
        case .unknown: "special file"
        }
    }
}

/// The parts of `struct stat` the workspace uses.
struct FileStatus: Sendable, Hashable {
    var kind: FileKind
    var size: Int64
    /// Permission bits only (`mode & 0o7777`).
    var permissions: UInt32
    /// Modification time, seconds since 1970.
    var modifiedAt: Double

    init(_ st: stat) {
        kind = FileKind(mode: UInt32(st.st_mode))
        size = Int64(st.st_size)
        permissions = UInt32(st.st_mode) & 0o7777
        #if canImport(Darwin)
        modifiedAt = Double(st.st_mtimespec.tv_sec) + Double(st.st_mtimespec.tv_nsec) / 1e9
        #else
        modifiedAt = Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9
        #endif
    }
}

/// System-call helpers with `EINTR` retry.
enum Syscall {
    /// Runs `body` until it does not fail with `EINTR`; a negative result becomes a typed error.
    @discardableResult
    static func retrying<R: BinaryInteger>(_ call: String, _ path: String, _ body: () -> R) throws(FileSystemError) -> R {
        while true {
            let result = body()
            if result >= 0 { return result }
            let code = errno
            if code == EINTR { continue }
            throw FileSystemError(call: call, path: path, code: code)
        }
    }
}

/// An open file descriptor that closes itself; every workspace access goes through one, so a
/// path is always resolved relative to an already-verified directory (`openat`), never as a
/// whole string the kernel would resolve through symlinks.
final class Descriptor {
    let fd: Int32
    /// Workspace-relative path of what this descriptor refers to, for messages.
    let path: String

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit {
        // close(2) must not be retried on EINTR on Linux: the descriptor is gone either way.
        _ = close(fd)
    }

    private func child(_ name: String) -> String { path.isEmpty ? name : path + "/" + name }

    /// Opens an absolute directory path. Only used for trusted, server-made roots; the last
    /// component still must not be a symlink.
    static func openDirectory(absolute: String, display: String = "") throws(FileSystemError) -> Descriptor {
        let fd = try Syscall.retrying("open", display.isEmpty ? absolute : display) {
            open(absolute, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        return Descriptor(fd: fd, path: display)
    }

    /// `lstat` of an entry of this directory; `nil` when it does not exist.
    func status(of name: String) throws(FileSystemError) -> FileStatus? {
        var st = stat()
        do {
            try Syscall.retrying("fstatat", child(name)) { fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) }
        } catch {
            if error.code == ENOENT { return nil }
            throw error
        }
        return FileStatus(st)
    }

    /// `fstat` of this descriptor.
    func status() throws(FileSystemError) -> FileStatus {
        var st = stat()
        try Syscall.retrying("fstat", path) { fstat(fd, &st) }
        return FileStatus(st)
    }

    /// Opens a subdirectory without following a symlink (`ELOOP`/`ENOTDIR` when it is one).
    func openDirectory(_ name: String) throws(FileSystemError) -> Descriptor {
        let fd = try Syscall.retrying("openat", child(name)) {
            openat(self.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        }
        return Descriptor(fd: fd, path: child(name))
    }

    /// Opens an entry for reading without following a symlink and without blocking on a FIFO.
    func openForReading(_ name: String) throws(FileSystemError) -> Descriptor {
        let fd = try Syscall.retrying("openat", child(name)) {
            openat(self.fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        }
        return Descriptor(fd: fd, path: child(name))
    }

    /// Creates a new file (`O_EXCL`: never reuses or follows an existing entry).
    func createFile(_ name: String, permissions: UInt32) throws(FileSystemError) -> Descriptor {
        let fd = try Syscall.retrying("openat", child(name)) {
            openat(self.fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode_t(permissions))
        }
        return Descriptor(fd: fd, path: child(name))
    }

    /// Opens (creating if needed) a file for locking or rewriting, never through a symlink.
    func openOrCreate(_ name: String, permissions: UInt32) throws(FileSystemError) -> Descriptor {
        let fd = try Syscall.retrying("openat", child(name)) {
            openat(self.fd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, mode_t(permissions))
        }
        return Descriptor(fd: fd, path: child(name))
    }

    /// Creates a subdirectory; `false` when something already exists under that name.
    @discardableResult
    func makeDirectory(_ name: String, permissions: UInt32 = 0o755) throws(FileSystemError) -> Bool {
        do {
            try Syscall.retrying("mkdirat", child(name)) { mkdirat(fd, name, mode_t(permissions)) }
            return true
        } catch {
            if error.code == EEXIST { return false }
            throw error
        }
    }

    /// Opens a subdirectory, creating it first when missing.
    func openOrMakeDirectory(_ name: String) throws(FileSystemError) -> Descriptor {
        do {
            return try openDirectory(name)
        } catch where error.code == ENOENT {
            try makeDirectory(name)
            return try openDirectory(name)
        }
    }

    /// Removes an entry (a file or symlink, or an empty directory when `directory`).
    func remove(_ name: String, directory: Bool = false) throws(FileSystemError) {
        try Syscall.retrying("unlinkat", child(name)) { unlinkat(fd, name, directory ? AT_REMOVEDIR : 0) }
    }

    /// Renames an entry of this directory into `target` (atomic replace of a file).
    func rename(_ name: String, to target: Descriptor, as newName: String) throws(FileSystemError) {
        try Syscall.retrying("renameat", target.child(newName)) { renameat(fd, name, target.fd, newName) }
    }

    /// Atomically swaps two entries (`renameat2(RENAME_EXCHANGE)`); `false` when the kernel or
    /// C library does not offer it.
    func exchange(_ name: String, with target: Descriptor, _ otherName: String) throws(FileSystemError) -> Bool {
        #if os(Linux)
        typealias RenameAt2 = @convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "renameat2") else { return false }
        let renameat2 = unsafeBitCast(symbol, to: RenameAt2.self)
        do {
            try Syscall.retrying("renameat2", target.child(otherName)) { renameat2(fd, name, target.fd, otherName, 2) }
            return true
        } catch {
            if error.code == ENOSYS || error.code == EINVAL { return false }
            throw error
        }
        #else
        return false
        #endif
    }

    /// Flushes file (or directory entry) changes to stable storage.
    func sync() throws(FileSystemError) {
        try Syscall.retrying("fsync", path) { fsync(fd) }
    }

    func setPermissions(_ permissions: UInt32) throws(FileSystemError) {
        try Syscall.retrying("fchmod", path) { fchmod(fd, mode_t(permissions)) }
    }

    /// Reads up to `buffer.count` bytes; 0 at end of file.
    func read(into buffer: inout [UInt8]) throws(FileSystemError) -> Int {
        try Syscall.retrying("read", path) {
            buffer.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress, raw.count) }
        }
    }

    /// Reads to end of file; fails with `EFBIG` past `limit` bytes.
    func readAll(limit: Int) throws(FileSystemError) -> [UInt8] {
        var result: [UInt8] = []
        let chunk = 64 * 1024
        var buffer = [UInt8](repeating: 0, count: chunk)
        while true {
            let count = try read(into: &buffer)
            if count == 0 { return result }
            if result.count + count > limit { throw FileSystemError(call: "read", path: path, code: EFBIG) }
            result.append(contentsOf: buffer[0..<count])
        }
    }

    /// Writes every byte, retrying short writes.
    func writeAll(_ bytes: some Collection<UInt8>) throws(FileSystemError) {
        let array = Array(bytes)
        var offset = 0
        while offset < array.count {
            let written = try Syscall.retrying("write", path) {
                array.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress! + offset, array.count - offset) }
            }
            offset += written
        }
    }

    /// Raw names in this directory (without `.` and `..`), sorted by bytes.
    func rawEntryNames() throws(FileSystemError) -> [[UInt8]] {
        let copy = try Syscall.retrying("dup", path) { dup(fd) }
        guard let dir = fdopendir(copy) else {
            let code = errno
            _ = close(copy)
            throw FileSystemError(call: "fdopendir", path: path, code: code)
        }
        defer { closedir(dir) }
        rewinddir(dir)
        var names: [[UInt8]] = []
        while true {
            errno = 0
            guard let entry = readdir(dir) else {
                if errno != 0 { throw FileSystemError(call: "readdir", path: path, code: errno) }
                break
            }
            let bytes: [UInt8] = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if bytes == [UInt8(ascii: ".")] || bytes == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(bytes)
        }
        names.sort { $0.lexicographicallyPrecedes($1) }
        return names
    }

    /// Removes the entry with a raw (possibly non-UTF-8) name and, for a directory, everything
    /// below it; never follows symlinks (a symlink is unlinked itself).
    func removeTree(rawName: [UInt8]) throws(FileSystemError) {
        let cName = rawName.map { CChar(bitPattern: $0) } + [0]
        let display = path.isEmpty ? String(decoding: rawName, as: UTF8.self) : path + "/" + String(decoding: rawName, as: UTF8.self)
        var st = stat()
        do {
            try Syscall.retrying("fstatat", display) { fstatat(fd, cName, &st, AT_SYMLINK_NOFOLLOW) }
        } catch where error.code == ENOENT {
            return
        }
        if FileKind(mode: UInt32(st.st_mode)) == .directory {
            let childFD = try Syscall.retrying("openat", display) {
                openat(fd, cName, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            let child = Descriptor(fd: childFD, path: display)
            for name in try child.rawEntryNames() { try child.removeTree(rawName: name) }
            try Syscall.retrying("unlinkat", display) { unlinkat(fd, cName, AT_REMOVEDIR) }
        } else {
            try Syscall.retrying("unlinkat", display) { unlinkat(fd, cName, 0) }
        }
    }

    /// Removes `name` and everything below it (see `removeTree(rawName:)`).
    func removeTree(_ name: String) throws(FileSystemError) {
        try removeTree(rawName: Array(name.utf8))
    }

    /// Holds an exclusive `flock` until this descriptor closes.
    func lockExclusive() throws(FileSystemError) {
        try Syscall.retrying("flock", path) { flock(fd, LOCK_EX) }
    }
}
