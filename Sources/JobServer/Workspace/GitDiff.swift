import Foundation
import Queue

/// Unified diffs of single files, produced by `git diff --no-index`.
///
/// git is run with no system or global configuration (so no external diff driver, colour or
/// prefix setting can change the output), `--binary` (so binary changes are appliable), and its
/// file headers are rewritten to `a/<path>` / `b/<path>`, giving sections that `git apply`
/// (and, for text, `patch -p1`) applies to the project root.
enum GitDiff {
    /// The diff section turning `old` into `new` (absolute paths, `nil` for a missing side),
    /// labelled with the project-relative `path`. Empty when the files are identical.
    static func section(path: String, old: String?, new: String?) throws(JobError) -> String {
        let output = try run(["diff", "--no-index", "--no-color", "--no-ext-diff", "--binary", "-U3", "--",
                              old ?? "/dev/null", new ?? "/dev/null"])
        return rewrite(output, path: path, created: old == nil, deleted: new == nil)
    }

    /// Replaces git's headers (which name the absolute temporary paths) with project paths.
    static func rewrite(_ output: String, path: String, created: Bool, deleted: Bool) -> String {
        let oldName = quote("a/" + path)
        let newName = quote("b/" + path)
        var lines = output.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        guard let start = lines.firstIndex(where: { $0.hasPrefix("diff --git ") }) else { return "" }
        var result = ["diff --git \(oldName) \(newName)"]
        var inHeader = true
        for line in lines[(start + 1)...] {
            if inHeader {
                if line.hasPrefix("--- ") {
                    result.append(created ? "--- /dev/null" : "--- \(oldName)")
                    continue
                }
                if line.hasPrefix("+++ ") {
                    result.append(deleted ? "+++ /dev/null" : "+++ \(newName)")
                    continue
                }
                if line.hasPrefix("Binary files ") {
                    result.append("Binary files \(created ? "/dev/null" : oldName) and \(deleted ? "/dev/null" : newName) differ")
                    continue
                }
                if line.hasPrefix("@@") || line == "GIT binary patch" { inHeader = false }
            }
            result.append(line)
        }
        return result.joined(separator: "\n") + "\n"
    }

    /// git-style quoting: names with `"`, `\` or control characters are C-quoted.
    static func quote(_ name: String) -> String {
        guard name.utf8.contains(where: { $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") || $0 < 0x20 || $0 == 0x7F }) else {
            return name
        }
        var out = "\""
        for byte in name.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += "\\\""
            case UInt8(ascii: "\\"): out += "\\\\"
            case UInt8(ascii: "\n"): out += "\\n"
            case UInt8(ascii: "\t"): out += "\\t"
            case 0..<0x20, 0x7F: out += "\\" + String(byte, radix: 8).leftPadded(to: 3)
            default: out.unicodeScalars.append(UnicodeScalar(byte))
            }
        }
        return out + "\""
    }

    static func gitExecutable() throws(JobError) -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":").map(String.init) + ["/usr/bin", "/usr/local/bin"] {
            let candidate = directory + "/git"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw JobError(.internal, "git is not installed; it is needed to compute diffs")
    }

    /// Runs git; exit status 0 (same) and 1 (different) are success.
    static func run(_ arguments: [String]) throws(JobError) -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try gitExecutable())
        process.arguments = arguments
        process.environment = [
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "HOME": "/nonexistent",
            "LC_ALL": "C",
        ]
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        do {
            try process.run()
        } catch {
            throw JobError(.internal, "cannot run git: \(error)")
        }
        // git writes little to stderr, so reading stdout to the end first cannot deadlock.
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let status = process.terminationStatus
        guard process.terminationReason == .exit, status == 0 || status == 1 else {
            throw JobError(.internal, "git diff failed (status \(status)): \(String(decoding: errors.prefix(500), as: UTF8.self))")
        }
        return String(decoding: output, as: UTF8.self)
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
