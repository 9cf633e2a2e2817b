import Queue

/// Builds a POSIX ustar archive of regular files and directories in memory.
///
/// Paths up to 100 bytes go in the header's `name` field; longer ones that split at a `/`
/// into a 155-byte prefix and 100-byte name use ustar's `prefix`; anything else gets a pax
/// extended header (`x`) with a `path` record, which GNU tar, bsdtar and `TarReader` all read.
/// Owner is always 0/0 and names empty: archives carry no host identity.
public struct TarWriter: Sendable {
    private var bytes: [UInt8] = []

    public init() {}

    /// Adds a directory entry (`path` without trailing slash).
    public mutating func addDirectory(_ path: String, permissions: UInt32 = 0o755, modifiedAt: Double = 0) throws(JobError) {
        try appendHeader(path: path + "/", type: UInt8(ascii: "5"), size: 0, permissions: permissions, modifiedAt: modifiedAt)
    }

    /// Adds a regular file with its contents.
    public mutating func addFile(_ path: String, bytes content: [UInt8], permissions: UInt32 = 0o644, modifiedAt: Double = 0) throws(JobError) {
        try appendHeader(path: path, type: UInt8(ascii: "0"), size: content.count, permissions: permissions, modifiedAt: modifiedAt)
        bytes.append(contentsOf: content)
        pad()
    }

    /// The archive, terminated by the two zero blocks that mark its end.
    public func finish() -> [UInt8] {
        bytes + [UInt8](repeating: 0, count: 1024)
    }

    private mutating func pad() {
        let remainder = bytes.count % 512
        if remainder != 0 { bytes.append(contentsOf: [UInt8](repeating: 0, count: 512 - remainder)) }
    }

    private mutating func appendHeader(path: String, type: UInt8, size: Int, permissions: UInt32, modifiedAt: Double) throws(JobError) {
        let pathBytes = Array(path.utf8)
        guard !pathBytes.isEmpty, !pathBytes.contains(0) else {
            throw JobError(.fileAccess, "cannot archive path \(WorkspacePathText.quoted(path))")
        }
        let mtime = max(0, Int(modifiedAt))
        var name = pathBytes
        var prefix: [UInt8] = []
        if pathBytes.count > 100 {
            if let split = TarWriter.ustarSplit(pathBytes) {
                (prefix, name) = split
            } else {
                // pax extended header carrying the full path; the ustar name is a truncated hint.
                let record = TarWriter.paxRecord(key: "path", value: pathBytes)
                var pax = TarHeader()
                pax.set(name: Array("PaxHeaders/".utf8) + Array(pathBytes.suffix(80)).filter { $0 != UInt8(ascii: "/") })
                pax.setOctal(offset: 100, length: 8, value: 0o644)
                pax.setOctal(offset: 124, length: 12, value: record.count)
                pax.setOctal(offset: 136, length: 12, value: mtime)
                pax.block[156] = UInt8(ascii: "x")
                pax.finish()
                bytes.append(contentsOf: pax.block)
                bytes.append(contentsOf: record)
                pad()
                name = Array(pathBytes.prefix(100))
            }
        }
        var header = TarHeader()
        header.set(name: name)
        header.setOctal(offset: 100, length: 8, value: Int(permissions & 0o7777))
        header.setOctal(offset: 108, length: 8, value: 0)
        header.setOctal(offset: 116, length: 8, value: 0)
        header.setOctal(offset: 124, length: 12, value: size)
        header.setOctal(offset: 136, length: 12, value: mtime)
        header.block[156] = type
        if !prefix.isEmpty { header.block.replaceSubrange(345..<(345 + prefix.count), with: prefix) }
        header.finish()
        bytes.append(contentsOf: header.block)
    }

    /// Splits a path into ustar `prefix` (≤155) and `name` (≤100) at a slash, if possible.
    static func ustarSplit(_ path: [UInt8]) -> ([UInt8], [UInt8])? {
        guard path.count <= 256 else { return nil }
        for index in path.indices.reversed() where path[index] == UInt8(ascii: "/") {
            let prefix = Array(path[..<index])
            let name = Array(path[(index + 1)...])
            if prefix.count <= 155, name.count <= 100, !name.isEmpty, !prefix.isEmpty { return (prefix, name) }
        }
        return nil
    }

    /// One pax record: `"<length> <key>=<value>\n"`, where length counts the whole record.
    static func paxRecord(key: String, value: [UInt8]) -> [UInt8] {
        let body = Array(" \(key)=".utf8) + value + [UInt8(ascii: "\n")]
        var length = body.count + 1
        while String(length).utf8.count + body.count != length { length = String(length).utf8.count + body.count }
        return Array(String(length).utf8) + body
    }
}

/// A 512-byte tar header under construction.
struct TarHeader {
    var block = [UInt8](repeating: 0, count: 512)

    mutating func set(name: [UInt8]) {
        block.replaceSubrange(0..<min(100, name.count), with: name.prefix(100))
    }

    /// Writes `value` as zero-padded octal followed by a NUL, filling `length` bytes.
    mutating func setOctal(offset: Int, length: Int, value: Int) {
        var digits = Array(String(value, radix: 8).utf8)
        if digits.count > length - 1 { digits = Array(digits.suffix(length - 1)) }
        let field = [UInt8](repeating: UInt8(ascii: "0"), count: length - 1 - digits.count) + digits + [0]
        block.replaceSubrange(offset..<(offset + length), with: field)
    }

    /// Sets magic `ustar\000`, version, and the checksum.
    mutating func finish() {
        block.replaceSubrange(257..<263, with: Array("ustar".utf8) + [0])
        block.replaceSubrange(263..<265, with: Array("00".utf8))
        block.replaceSubrange(148..<156, with: [UInt8](repeating: UInt8(ascii: " "), count: 8))
        let sum = block.reduce(0) { $0 + Int($1) }
        var digits = Array(String(sum, radix: 8).utf8)
        digits = [UInt8](repeating: UInt8(ascii: "0"), count: max(0, 6 - digits.count)) + digits
        block.replaceSubrange(148..<156, with: digits + [0, UInt8(ascii: " ")])
    }
}
