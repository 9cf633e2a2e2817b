import Queue

/// A validated project name: `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`.
///
/// Project names become a directory name under the user's workspace root, so the rule keeps
/// them safe as a single path component: they never start with `.` (so they cannot collide with
/// the store's own `.locks`, `.journal` and `.tmp` directories, nor be `.`/`..`) and contain no
/// `/`. Invalid names are a client error: `E003 INVALID_REQUEST`.
public struct ProjectName: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public let rawValue: String

    /// Validates `rawValue`; throws `JobError(.invalidRequest)` naming the problem.
    public init(validating rawValue: String) throws(JobError) {
        if let problem = ProjectName.problem(with: rawValue) {
            throw JobError(.invalidRequest, "invalid project name \(WorkspacePathText.quoted(rawValue)): \(problem)",
                           details: .object(["project": .string(rawValue)]))
        }
        self.rawValue = rawValue
    }

    /// Failable form of `init(validating:)`, for `RawRepresentable`.
    public init?(rawValue: String) {
        guard ProjectName.problem(with: rawValue) == nil else { return nil }
        self.rawValue = rawValue
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(validating: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    public var description: String { rawValue }
    public static func < (lhs: ProjectName, rhs: ProjectName) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Why `name` is not a valid project name, or `nil` when it is.
    static func problem(with name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > 64 { return "must be at most 64 characters (got \(bytes.count))" }
        func isAlnum(_ b: UInt8) -> Bool {
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
        }
        if !isAlnum(bytes[0]) { return "must start with a letter or digit" }
        for b in bytes.dropFirst() where !(isAlnum(b) || b == UInt8(ascii: ".") || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")) {
            return "may contain only letters, digits, '.', '_' and '-'"
        }
        return nil
    }
}

/// A validated path of a file inside a project, relative to the project root (`src/app.py`).
///
/// The rules make a path safe to resolve component by component under the project directory:
/// non-empty, at most 4096 bytes, no leading `/`, no empty, `.` or `..` components, each
/// component at most 255 bytes, no NUL or other control characters, no backslashes (which
/// other platforms treat as separators). Invalid paths are `E004 FILE_ACCESS`, like any other
/// attempt to reach outside a workspace. Validation does not touch the file system: symlinks
/// are refused while walking (see `WorkspaceStore`).
public struct RelativePath: RawRepresentable, Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    /// Maximum length of a whole path, in UTF-8 bytes.
    public static let maxBytes = 4096
    /// Maximum length of one component, in UTF-8 bytes.
    public static let maxComponentBytes = 255

    public let rawValue: String

    /// Validates `rawValue`; throws `JobError(.fileAccess)` naming the problem.
    public init(validating rawValue: String) throws(JobError) {
        if let problem = RelativePath.problem(with: rawValue) {
            throw JobError(.fileAccess, "invalid file path \(WorkspacePathText.quoted(rawValue)): \(problem)",
                           details: .object(["path": .string(rawValue)]))
        }
        self.rawValue = rawValue
    }

    /// Failable form of `init(validating:)`, for `RawRepresentable`.
    public init?(rawValue: String) {
        guard RelativePath.problem(with: rawValue) == nil else { return nil }
        self.rawValue = rawValue
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        try self.init(validating: text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(rawValue)
    }

    /// The path's components, in order (`["src", "app.py"]`).
    public var components: [String] { rawValue.split(separator: "/", omittingEmptySubsequences: false).map(String.init) }

    /// The last component.
    public var lastComponent: String { components.last ?? rawValue }

    /// The containing directory's path, or `nil` for a top-level entry.
    public var parent: RelativePath? {
        guard let slash = rawValue.lastIndex(of: "/") else { return nil }
        return RelativePath(rawValue: String(rawValue[..<slash]))
    }

    /// This path followed by `component`, when the result is valid.
    public func appending(_ component: String) -> RelativePath? {
        RelativePath(rawValue: rawValue + "/" + component)
    }

    public var description: String { rawValue }
    public static func < (lhs: RelativePath, rhs: RelativePath) -> Bool {
        // Byte order, so listings sort the same on every platform.
        lhs.rawValue.utf8.lexicographicallyPrecedes(rhs.rawValue.utf8)
    }

    /// Why `path` is not a valid relative path, or `nil` when it is.
    static func problem(with path: String) -> String? {
        let bytes = Array(path.utf8)
        if bytes.isEmpty { return "must not be empty" }
        if bytes.count > maxBytes { return "longer than \(maxBytes) bytes (\(bytes.count))" }
        if bytes[0] == UInt8(ascii: "/") { return "absolute paths are not allowed" }
        for b in bytes {
            if b == 0 { return "contains a NUL byte" }
            if b < 0x20 || b == 0x7F { return "contains a control character" }
            if b == UInt8(ascii: "\\") { return "contains a backslash" }
        }
        for component in bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false) {
            if component.isEmpty { return "contains an empty component ('//' or a trailing '/')" }
            if component.elementsEqual([UInt8(ascii: ".")]) { return "contains a '.' component" }
            if component.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")]) { return "contains a '..' component" }
            if component.count > maxComponentBytes {
                return "has a component longer than \(maxComponentBytes) bytes"
            }
        }
        return nil
    }
}

/// Validation of the user identifier used as a directory name.
enum WorkspaceUser {
    /// The directory name for `user`; refuses identifiers that are not a safe single component
    /// (they come from the account store, so a bad one is a bug: `E500`).
    static func directoryName(_ user: UserID) throws(JobError) -> String {
        let bytes = Array(user.rawValue.utf8)
        let ok = !bytes.isEmpty && bytes.count <= 128 && bytes[0] != UInt8(ascii: ".") && bytes.allSatisfy { b in
            (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A)
                || b == UInt8(ascii: "_") || b == UInt8(ascii: "-")
        }
        guard ok else { throw JobError(.internal, "user id is not usable as a workspace directory name") }
        return user.rawValue
    }
}

/// Formatting helpers for paths in error messages.
enum WorkspacePathText {
    /// `'text'`, with control characters escaped and long text shortened, so a hostile name
    /// cannot forge log lines or flood a message.
    static func quoted(_ text: String, limit: Int = 200) -> String {
        var out = ""
        var count = 0
        for scalar in text.unicodeScalars {
            if count >= limit { out += "…"; break }
            switch scalar.value {
            case 0..<0x20, 0x7F:
                let hex = String(scalar.value, radix: 16, uppercase: true)
                out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
            case UInt32(UInt8(ascii: "'")): out += "\\'"
            default: out.unicodeScalars.append(scalar)
            }
            count += 1
        }
        return "'" + out + "'"
    }
}
