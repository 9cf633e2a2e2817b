import Queue

/// One accepted archive entry.
public struct TarEntry: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case file, directory }
    public var path: RelativePath
    public var kind: Kind
    /// Permission bits from the header (`& 0o777`).
    public var permissions: UInt32
    public var modifiedAt: Double
    /// File contents (empty for directories).
    public var bytes: [UInt8]
}

/// A strict streaming reader of tar archives (ustar, GNU long names `L`, pax `x`/`g`).
///
/// It accepts only regular files and directories with safe relative paths, and refuses — with
/// `E004` naming the entry — symlinks, hard links, devices, FIFOs, unknown entry types,
/// absolute paths, `..`, duplicate paths, a file used as a directory, sizes above the per-file
/// limit, more entries than the project may hold, bad header checksums, malformed numeric
/// fields or pax records, truncated data, a missing end-of-archive marker and non-zero data
/// after it. Accepted content totals above the project quota are `E008`.
struct TarReader<Source: ByteSource> {
    private var source: Source
    private let limits: WorkspaceLimits
    private var buffer: [UInt8] = []
    private var bufferOffset = 0
    private var offset: Int64 = 0
    private var seen: [String: TarEntry.Kind] = [:]
    /// Every proper ancestor directory of an entry seen so far.
    private var ancestors: Set<String> = []
    private var fileCount = 0
    private var directoryCount = 0
    private var totalBytes: Int64 = 0
    private var globalPax: [String: [UInt8]] = [:]
    private var done = false

    init(_ source: Source, limits: WorkspaceLimits) {
        self.source = source
        self.limits = limits
    }

    /// The next entry, or `nil` after the end-of-archive marker.
    mutating func next() throws(JobError) -> TarEntry? {
        if done { return nil }
        var longName: [UInt8]?
        var pax: [String: [UInt8]] = [:]
        var metaHeaders = 0
        while true {
            let headerOffset = offset
            guard let block = try readBlock() else {
                throw JobError(.fileAccess, "archive is truncated: it ends without the end-of-archive marker")
            }
            if block.allSatisfy({ $0 == 0 }) {
                guard let second = try readBlock(), second.allSatisfy({ $0 == 0 }) else {
                    throw JobError(.fileAccess, "archive is malformed: a lone zero block at offset \(headerOffset)")
                }
                if longName != nil || !pax.isEmpty {
                    throw JobError(.fileAccess, "archive is malformed: an extended header at the end has no entry")
                }
                try drainPadding()
                done = true
                return nil
            }
            let rawName = TarReader.field(block, 0, 100)
            let label = WorkspacePathText.quoted(String(decoding: longName ?? pax["path"] ?? rawName, as: UTF8.self))
            try verifyChecksum(block, label: label, offset: headerOffset)
            let magic = Array(block[257..<263])
            let gnu = magic == Array("ustar ".utf8)
            guard gnu || magic == Array("ustar".utf8) + [0] else {
                throw JobError(.fileAccess, "archive entry \(label) has no ustar magic (only ustar/GNU/pax tar archives are accepted)")
            }
            let type = block[156]
            let declaredSize = try TarReader.number(block, 124, 12, field: "size", label: label)
            var size = declaredSize
            if let paxSize = pax["size"] ?? globalPax["size"] {
                size = try TarReader.paxNumber(paxSize, label: label)
            }
            metaHeaders += 1
            if metaHeaders > 8 { throw JobError(.fileAccess, "archive entry \(label) has too many extended headers") }
            switch type {
            case UInt8(ascii: "L"):
                guard declaredSize <= Int64(RelativePath.maxBytes) + 1 else {
                    throw JobError(.fileAccess, "archive entry \(label) has a GNU long name of \(declaredSize) bytes, above \(RelativePath.maxBytes)")
                }
                var name = try readData(Int(declaredSize), label: label)
                while name.last == 0 { name.removeLast() }
                longName = name
                continue
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                guard declaredSize <= 64 * 1024 else {
                    throw JobError(.fileAccess, "archive entry \(label) has a pax header of \(declaredSize) bytes, above 65536")
                }
                let records = try TarReader.parsePax(try readData(Int(declaredSize), label: label), label: label)
                if type == UInt8(ascii: "x") { pax.merge(records) { $1 } } else { globalPax.merge(records) { $1 } }
                continue
            default:
                break
            }
            // A real entry: work out its path.
            var nameBytes: [UInt8]
            if let path = pax["path"] ?? globalPax["path"] {
                nameBytes = path
            } else if let longName {
                nameBytes = longName
            } else {
                let prefix = gnu ? [] : TarReader.field(block, 345, 155)
                nameBytes = prefix.isEmpty ? rawName : prefix + [UInt8(ascii: "/")] + rawName
            }
            let shown = WorkspacePathText.quoted(String(decoding: nameBytes, as: UTF8.self))
            let kind: TarEntry.Kind
            switch type {
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"): kind = .file
            case UInt8(ascii: "5"): kind = .directory
            case UInt8(ascii: "1"): throw JobError(.fileAccess, "archive entry \(shown) is a hard link; links are not allowed")
            case UInt8(ascii: "2"): throw JobError(.fileAccess, "archive entry \(shown) is a symbolic link; links are not allowed")
            case UInt8(ascii: "3"): throw JobError(.fileAccess, "archive entry \(shown) is a character device; only files and directories are allowed")
            case UInt8(ascii: "4"): throw JobError(.fileAccess, "archive entry \(shown) is a block device; only files and directories are allowed")
            case UInt8(ascii: "6"): throw JobError(.fileAccess, "archive entry \(shown) is a FIFO; only files and directories are allowed")
            case UInt8(ascii: "K"): throw JobError(.fileAccess, "archive entry \(shown) has a GNU long link name; links are not allowed")
            default:
                let typeText = (type >= 0x21 && type < 0x7F) ? String(UnicodeScalar(type)) : "0x" + String(type, radix: 16)
                throw JobError(.fileAccess, "archive entry \(shown) has unsupported type '\(typeText)'; only files and directories are allowed")
            }
            let path = try TarReader.normalize(nameBytes, shown: shown)
            guard let path else {
                // The archive root ("./"): nothing to create.
                guard kind == .directory, size == 0 else {
                    throw JobError(.fileAccess, "archive entry \(shown) is not a valid file path")
                }
                longName = nil; pax = [:]; metaHeaders = 0
                continue
            }
            if kind == .directory && size != 0 {
                throw JobError(.fileAccess, "archive entry \(shown) is a directory with a non-zero size (\(size))")
            }
            if size > Int64(limits.maxFileBytes) {
                throw JobError(.fileAccess,
                               "archive entry \(shown) declares \(size) bytes, above the per-file limit of \(limits.maxFileBytes) bytes",
                               details: .object(["path": .string(path.rawValue), "limit": .number(Double(limits.maxFileBytes))]))
            }
            try register(path, kind: kind, shown: shown, size: size)
            let bytes = try readData(Int(size), label: shown)
            let permissions = UInt32(truncatingIfNeeded: (try? TarReader.number(block, 100, 8, field: "mode", label: shown)) ?? 0o644) & 0o777
            let mtime = Double((try? TarReader.number(block, 136, 12, field: "mtime", label: shown)) ?? 0)
            return TarEntry(path: path, kind: kind, permissions: permissions, modifiedAt: mtime, bytes: bytes)
        }
    }

    /// Checks duplicates, file/directory clashes and the count and byte limits.
    private mutating func register(_ path: RelativePath, kind: TarEntry.Kind, shown: String, size: Int64) throws(JobError) {
        if seen[path.rawValue] != nil {
            throw JobError(.fileAccess, "archive contains the path \(shown) more than once (duplicate entry)")
        }
        var ancestor = path.parent
        while let current = ancestor {
            if seen[current.rawValue] == .file {
                throw JobError(.fileAccess, "archive entry \(shown) is inside \(WorkspacePathText.quoted(current.rawValue)), which is a file")
            }
            ancestor = current.parent
        }
        if kind == .directory {
            directoryCount += 1
            if directoryCount > limits.maxFilesPerProject {
                throw JobError(.fileAccess, "archive has too many directories (more than \(limits.maxFilesPerProject))",
                               details: .object(["limit": .number(Double(limits.maxFilesPerProject))]))
            }
        } else {
            // A file may not be the parent of an earlier entry either.
            if ancestors.contains(path.rawValue) {
                throw JobError(.fileAccess, "archive entry \(shown) is a file but earlier entries are inside it")
            }
            fileCount += 1
            totalBytes += size
            if fileCount > limits.maxFilesPerProject { throw limits.tooManyFiles(fileCount) }
            if totalBytes > Int64(limits.maxProjectBytes) { throw limits.tooManyBytes(totalBytes) }
        }
        seen[path.rawValue] = kind
        var parent = path.parent
        while let current = parent, ancestors.insert(current.rawValue).inserted {
            parent = current.parent
        }
    }

    /// Strips `./` prefixes and a trailing `/`, then validates; `nil` for the archive root.
    static func normalize(_ name: [UInt8], shown: String) throws(JobError) -> RelativePath? {
        if name.first == UInt8(ascii: "/") {
            throw JobError(.fileAccess, "archive entry \(shown) has an absolute path")
        }
        var bytes = name[...]
        while bytes.starts(with: Array("./".utf8)) { bytes = bytes.dropFirst(2) }
        while bytes.last == UInt8(ascii: "/") { bytes = bytes.dropLast() }
        if bytes.isEmpty || bytes.elementsEqual([UInt8(ascii: ".")]) { return nil }
        if bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false)
            .contains(where: { $0.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) }) {
            throw JobError(.fileAccess, "archive entry \(shown) contains a '..' component")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw JobError(.fileAccess, "archive entry \(shown) has a name that is not valid UTF-8")
        }
        if let problem = RelativePath.problem(with: text) {
            throw JobError(.fileAccess, "archive entry \(shown) has an invalid path: \(problem)")
        }
        return RelativePath(rawValue: text)
    }

    private func verifyChecksum(_ block: [UInt8], label: String, offset: Int64) throws(JobError) {
        guard let stored = try? TarReader.number(block, 148, 8, field: "checksum", label: label) else {
            throw JobError(.fileAccess, "archive entry \(label) at offset \(offset) has a malformed header checksum field")
        }
        var unsigned = 0
        var signed = 0
        for (index, byte) in block.enumerated() {
            let value = (148..<156).contains(index) ? UInt8(ascii: " ") : byte
            unsigned += Int(value)
            signed += Int(Int8(bitPattern: value))
        }
        guard stored == Int64(unsigned) || stored == Int64(signed) else {
            throw JobError(.fileAccess, "archive entry \(label) at offset \(offset) has a bad header checksum (stored \(stored), computed \(unsigned))")
        }
    }

    /// A NUL-terminated header field.
    static func field(_ block: [UInt8], _ start: Int, _ length: Int) -> [UInt8] {
        Array(block[start..<(start + length)].prefix { $0 != 0 })
    }

    /// An octal numeric field (NUL/space padded), or GNU base-256 when the high bit is set.
    static func number(_ block: [UInt8], _ start: Int, _ length: Int, field name: String, label: String) throws(JobError) -> Int64 {
        let raw = block[start..<(start + length)]
        if let first = raw.first, first & 0x80 != 0 {
            guard first == 0x80, raw.dropFirst().prefix(length - 9).allSatisfy({ $0 == 0 }) else {
                throw JobError(.fileAccess, "archive entry \(label) has an out-of-range \(name) field")
            }
            var value: Int64 = 0
            for byte in raw.suffix(8) {
                if value > (Int64.max >> 8) { throw JobError(.fileAccess, "archive entry \(label) has an out-of-range \(name) field") }
                value = value << 8 | Int64(byte)
            }
            return value
        }
        var digits = raw.drop { $0 == UInt8(ascii: " ") }
        digits = digits.prefix { $0 != 0 && $0 != UInt8(ascii: " ") }
        let rest = raw.suffix(from: digits.endIndex)
        guard rest.allSatisfy({ $0 == 0 || $0 == UInt8(ascii: " ") }) else {
            throw JobError(.fileAccess, "archive entry \(label) has a malformed \(name) field")
        }
        var value: Int64 = 0
        for digit in digits {
            guard digit >= UInt8(ascii: "0"), digit <= UInt8(ascii: "7"), value < (Int64.max >> 3) else {
                throw JobError(.fileAccess, "archive entry \(label) has a malformed \(name) field")
            }
            value = value << 3 | Int64(digit - UInt8(ascii: "0"))
        }
        return value
    }

    static func paxNumber(_ text: [UInt8], label: String) throws(JobError) -> Int64 {
        guard !text.isEmpty, text.count <= 18, text.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let value = Int64(String(decoding: text, as: UTF8.self)) else {
            throw JobError(.fileAccess, "archive entry \(label) has a malformed pax size record")
        }
        return value
    }

    /// Parses pax records `"<len> <key>=<value>\n"`.
    static func parsePax(_ data: [UInt8], label: String) throws(JobError) -> [String: [UInt8]] {
        var records: [String: [UInt8]] = [:]
        var index = 0
        while index < data.count {
            if data[index] == 0 && data[index...].allSatisfy({ $0 == 0 }) { break }
            guard let space = data[index...].firstIndex(of: UInt8(ascii: " ")), space - index <= 8,
                  let length = Int(String(decoding: data[index..<space], as: UTF8.self)), length > 0,
                  index + length <= data.count, data[index + length - 1] == UInt8(ascii: "\n"),
                  let equals = data[(space + 1)..<(index + length)].firstIndex(of: UInt8(ascii: "=")) else {
                throw JobError(.fileAccess, "archive entry \(label) has a malformed pax extended header")
            }
            let key = String(decoding: data[(space + 1)..<equals], as: UTF8.self)
            records[key] = Array(data[(equals + 1)..<(index + length - 1)])
            index += length
        }
        return records
    }

    // MARK: - Reading

    private mutating func readBlock() throws(JobError) -> [UInt8]? {
        let block = try readExactly(512)
        if block.isEmpty { return nil }
        guard block.count == 512 else {
            throw JobError(.fileAccess, "archive is truncated: it ends inside a header block at offset \(offset)")
        }
        return block
    }

    private mutating func readData(_ size: Int, label: String) throws(JobError) -> [UInt8] {
        let padded = (size + 511) / 512 * 512
        let data = try readExactly(padded)
        guard data.count == padded else {
            throw JobError(.fileAccess, "archive is truncated: entry \(label) declares \(size) bytes but the archive ends first")
        }
        return Array(data.prefix(size))
    }

    private mutating func readExactly(_ count: Int) throws(JobError) -> [UInt8] {
        var result: [UInt8] = []
        result.reserveCapacity(count)
        while result.count < count {
            if bufferOffset >= buffer.count {
                buffer = try source.read(maxCount: 1 << 16)
                bufferOffset = 0
                if buffer.isEmpty { break }
            }
            let take = min(count - result.count, buffer.count - bufferOffset)
            result.append(contentsOf: buffer[bufferOffset..<(bufferOffset + take)])
            bufferOffset += take
        }
        offset += Int64(result.count)
        return result
    }

    /// After the end marker only zero padding may follow (tar pads to 10 KiB records); at most
    /// 1 MiB of it.
    private mutating func drainPadding() throws(JobError) {
        var padding = 0
        while true {
            let chunk = try readExactly(1 << 16)
            if chunk.isEmpty { return }
            guard chunk.allSatisfy({ $0 == 0 }) else {
                throw JobError(.fileAccess, "archive has data after its end-of-archive marker")
            }
            padding += chunk.count
            if padding > 1 << 20 {
                throw JobError(.fileAccess, "archive too large: more than 1 MiB of padding after the end-of-archive marker")
            }
        }
    }
}
