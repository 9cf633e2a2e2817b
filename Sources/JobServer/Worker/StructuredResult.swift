import Foundation
import Queue

/// Extracts the JSON object an analyze or review job ends its answer with.
///
/// The agent is asked for a ```json fenced block; a bare object at the end is accepted too.
enum StructuredResult {
    static func extract(from text: String) -> [String: JSONValue]? {
        var candidates: [String] = []
        var remainder = text[...]
        while let open = remainder.range(of: "```json") {
            let after = remainder[open.upperBound...]
            guard let close = after.range(of: "```") else { break }
            candidates.append(String(after[..<close.lowerBound]))
            remainder = after[close.upperBound...]
        }
        if let first = text.firstIndex(of: "{"), let last = text.lastIndex(of: "}"), first < last {
            candidates.append(String(text[first...last]))
        }
        for candidate in candidates.reversed() {
            if case .object(let object)? = JSONValue.parse(candidate.trimmingCharacters(in: .whitespacesAndNewlines)) {
                return object
            }
        }
        return nil
    }

    static let severityRank = ["info": 0, "warning": 1, "error": 2, "critical": 3]

    /// Normalized findings at or above `minimum` severity; `nil` when `findings` is not a list.
    static func findings(_ value: JSONValue?, minimum: String) -> [JSONValue]? {
        guard let items = value?.arrayValue else { return nil }
        let floor = severityRank[minimum] ?? 0
        return items.compactMap { item -> JSONValue? in
            guard let object = item.objectValue else { return nil }
            let severity = object["severity"]?.stringValue?.lowercased() ?? "info"
            guard (severityRank[severity] ?? 0) >= floor else { return nil }
            return .object([
                "file": object["file"] ?? .null,
                "line": object["line"] ?? .null,
                "severity": .string(severityRank[severity] == nil ? "info" : severity),
                "message": object["message"] ?? .string(""),
                "suggestion": object["suggestion"] ?? .null,
            ])
        }
    }
}
