import Foundation
import Queue

/// The four kinds of job (DESIGN §4).
public enum JobKind: String, Sendable, Codable, CaseIterable, Hashable {
    case generate, analyze, refactor, review
}

/// Per-job options; every field has a default so `{}` is valid.
public struct JobOptions: Sendable, Codable, Hashable {
    /// `json` asks analyze/review for a structured result; `text` keeps the agent's prose.
    public var format: String
    public var timeoutSeconds: Int
    public var idleTimeoutSeconds: Int
    public var maxTurns: Int?
    public var model: String?
    /// Return the change without applying it to the project.
    public var dryRun: Bool
    /// Lowest severity a review reports.
    public var severity: String
    /// Lets a review edit files to fix what it finds.
    public var fix: Bool
    /// How many times the job may be started when its worker is lost.
    public var maxAttempts: Int

    enum CodingKeys: String, CodingKey, CaseIterable {
        case format
        case timeoutSeconds = "timeout_s"
        case idleTimeoutSeconds = "idle_timeout_s"
        case maxTurns = "max_turns"
        case model
        case dryRun = "dry_run"
        case severity
        case fix
        case maxAttempts = "max_attempts"
    }

    public init(kind: JobKind) {
        format = (kind == .analyze || kind == .review) ? "json" : "text"
        timeoutSeconds = 600
        idleTimeoutSeconds = 120
        maxTurns = nil
        model = nil
        dryRun = false
        severity = "info"
        fix = false
        maxAttempts = 3
    }
}

/// A validated submission, stored as the job's payload.
public struct JobRequest: Sendable, Codable, Hashable {
    public var type: JobKind
    public var project: String
    public var prompt: String
    public var files: [String]
    public var options: JobOptions
    public var metadata: JSONValue?
    public var priority: Int

    /// Limits on a submission; generous enough for real prompts, small enough to keep the
    /// store and the agent's command line sane.
    public enum Limits {
        public static let promptBytes = 100_000
        public static let files = 1_000
        public static let metadataBytes = 16_384
        public static let maxTimeoutSeconds = 3_600
        public static let maxTurns = 200
        public static let maxAttempts = 10
        public static let priorities = -100...100
        public static let severities = ["info", "warning", "error", "critical"]
        /// Model names: letters, digits and `._:-[]`, at most 100 characters.
        public static func isModelName(_ name: String) -> Bool {
            guard let first = name.unicodeScalars.first, name.unicodeScalars.count <= 100,
                  CharacterSet.alphanumerics.contains(first), first.isASCII else { return false }
            return name.unicodeScalars.allSatisfy { $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "._:-[]".unicodeScalars.contains($0)) }
        }
    }

    /// Validates a submission body field by field, rejecting unknown fields, so a client gets
    /// the first precise problem with its name (`details.field`) instead of a generic failure.
    public static func parse(_ body: JSONValue) throws(APIError) -> JobRequest {
        guard case .object(let object) = body else { throw .invalid("the body must be a JSON object") }
        let known: Set = ["type", "project", "prompt", "files", "options", "metadata", "priority"]
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalid("unknown field '\(unknown)'", field: unknown, status: .unprocessableContent)
        }
        guard let typeValue = object["type"] else { throw .invalid("'type' is required", field: "type") }
        guard let typeText = typeValue.stringValue else { throw .invalid("'type' must be a string", field: "type") }
        guard let kind = JobKind(rawValue: typeText) else {
            throw .invalid("unknown job type '\(typeText)': use generate, analyze, refactor or review",
                           field: "type", status: .unprocessableContent)
        }
        guard let projectValue = object["project"] else { throw .invalid("'project' is required", field: "project") }
        guard let project = projectValue.stringValue else { throw .invalid("'project' must be a string", field: "project") }
        do { _ = try ProjectName(validating: project) } catch {
            throw APIError(error, status: .unprocessableContent).naming(field: "project")
        }
        guard let promptValue = object["prompt"] else { throw .invalid("'prompt' is required", field: "prompt") }
        guard let prompt = promptValue.stringValue else { throw .invalid("'prompt' must be a string", field: "prompt") }
        if prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw .invalid("'prompt' must not be empty", field: "prompt", status: .unprocessableContent)
        }
        if prompt.utf8.count > Limits.promptBytes {
            throw .invalid("'prompt' is longer than \(Limits.promptBytes) bytes", field: "prompt", status: .contentTooLarge)
        }
        if prompt.contains("\u{0}") { throw .invalid("'prompt' must not contain NUL", field: "prompt", status: .unprocessableContent) }

        var files: [String] = []
        if let filesValue = object["files"], filesValue != .null {
            guard let array = filesValue.arrayValue else { throw .invalid("'files' must be an array of paths", field: "files") }
            if array.count > Limits.files { throw .invalid("'files' lists more than \(Limits.files) paths", field: "files", status: .unprocessableContent) }
            for item in array {
                guard let path = item.stringValue else { throw .invalid("'files' must contain only strings", field: "files") }
                do { _ = try RelativePath(validating: path) } catch { throw APIError(error) }
                files.append(path)
            }
        }

        var metadata: JSONValue?
        if let value = object["metadata"], value != .null {
            guard value.objectValue != nil else { throw .invalid("'metadata' must be an object", field: "metadata") }
            if value.jsonText().utf8.count > Limits.metadataBytes {
                throw .invalid("'metadata' is larger than \(Limits.metadataBytes) bytes", field: "metadata", status: .contentTooLarge)
            }
            metadata = value
        }

        var priority = 0
        if let value = object["priority"], value != .null {
            guard let number = value.intValue else { throw .invalid("'priority' must be an integer", field: "priority") }
            guard Limits.priorities.contains(number) else {
                throw .invalid("'priority' must be between -100 and 100", field: "priority", status: .unprocessableContent)
            }
            priority = number
        }

        let options = try parseOptions(object["options"], kind: kind)
        return JobRequest(type: kind, project: project, prompt: prompt, files: files, options: options,
                          metadata: metadata, priority: priority)
    }

    private static func parseOptions(_ value: JSONValue?, kind: JobKind) throws(APIError) -> JobOptions {
        var options = JobOptions(kind: kind)
        guard let value, value != .null else { return options }
        guard let object = value.objectValue else { throw .invalid("'options' must be an object", field: "options") }
        let known = Set(JobOptions.CodingKeys.allCases.map(\.rawValue))
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw .invalid("unknown option '\(unknown)'", field: "options.\(unknown)", status: .unprocessableContent)
        }
        func int(_ key: String, _ range: ClosedRange<Int>) throws(APIError) -> Int? {
            guard let item = object[key], item != .null else { return nil }
            guard let number = item.intValue else { throw .invalid("'options.\(key)' must be an integer", field: "options.\(key)") }
            guard range.contains(number) else {
                throw .invalid("'options.\(key)' must be between \(range.lowerBound) and \(range.upperBound)",
                               field: "options.\(key)", status: .unprocessableContent)
            }
            return number
        }
        func bool(_ key: String) throws(APIError) -> Bool? {
            guard let item = object[key], item != .null else { return nil }
            guard let flag = item.boolValue else { throw .invalid("'options.\(key)' must be a boolean", field: "options.\(key)") }
            return flag
        }
        func string(_ key: String) throws(APIError) -> String? {
            guard let item = object[key], item != .null else { return nil }
            guard let text = item.stringValue else { throw .invalid("'options.\(key)' must be a string", field: "options.\(key)") }
            return text
        }
        if let format = try string("format") {
            guard format == "json" || format == "text" else {
                throw .invalid("'options.format' must be 'json' or 'text'", field: "options.format", status: .unprocessableContent)
            }
            options.format = format
        }
        if let timeout = try int("timeout_s", 1...Limits.maxTimeoutSeconds) { options.timeoutSeconds = timeout }
        if let idle = try int("idle_timeout_s", 1...Limits.maxTimeoutSeconds) { options.idleTimeoutSeconds = idle }
        options.maxTurns = try int("max_turns", 1...Limits.maxTurns)
        if let attempts = try int("max_attempts", 1...Limits.maxAttempts) { options.maxAttempts = attempts }
        if let model = try string("model") {
            guard Limits.isModelName(model) else {
                throw .invalid("'options.model' is not a model name", field: "options.model", status: .unprocessableContent)
            }
            options.model = model
        }
        if let dryRun = try bool("dry_run") { options.dryRun = dryRun }
        if let fix = try bool("fix") { options.fix = fix }
        if let severity = try string("severity") {
            guard Limits.severities.contains(severity) else {
                throw .invalid("'options.severity' must be one of \(Limits.severities.joined(separator: ", "))",
                               field: "options.severity", status: .unprocessableContent)
            }
            options.severity = severity
        }
        return options
    }
}

extension JobOptions {
    /// The options as stored and rendered (snake_case; unset optional ones left out).
    var json: JSONValue {
        var object: [String: JSONValue] = [
            "format": .string(format), "timeout_s": .number(Double(timeoutSeconds)),
            "idle_timeout_s": .number(Double(idleTimeoutSeconds)),
            "dry_run": .bool(dryRun), "severity": .string(severity), "fix": .bool(fix),
            "max_attempts": .number(Double(maxAttempts)),
        ]
        if let maxTurns { object["max_turns"] = .number(Double(maxTurns)) }
        if let model { object["model"] = .string(model) }
        return .object(object)
    }
}

extension JobRequest {
    /// The request as the job's stored payload; `Codable` reads it back (`JSONValue.decode`).
    var json: JSONValue {
        [
            "type": .string(type.rawValue), "project": .string(project), "prompt": .string(prompt),
            "files": .array(files.map(JSONValue.string)), "options": options.json,
            "metadata": metadata ?? .object([:]), "priority": .number(Double(priority)),
        ]
    }
}
