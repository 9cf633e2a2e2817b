import Foundation
import Queue
import Sandbox

/// Reads the CLI's stream-json output line by line: turns each line into an event and keeps
/// what the outcome depends on (the `result` line, model API errors).
struct AgentStream: Sendable {
    /// The final `result` object, if the agent printed one.
    private(set) var result: JSONValue?
    /// The `error` of the last assistant message that reported a model API failure.
    private(set) var apiError: String?
    private(set) var lines = 0

    /// The event to store for one output line; the line is kept verbatim when it is JSON.
    mutating func consume(_ line: String) -> NewEvent? {
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return nil }
        lines += 1
        guard trimmed.hasPrefix("{"), let value = JSONValue.parse(trimmed), case .object(let object) = value else {
            return NewEvent(type: "output", data: JSONValue.object(["text": .string(line)]).jsonText())
        }
        let type = object["type"]?.stringValue ?? "output"
        switch type {
        case "result":
            result = value
        case "assistant":
            if let error = object["error"]?.stringValue, !error.isEmpty { apiError = error }
        default:
            break
        }
        return NewEvent(type: type, data: trimmed)
    }
}

/// Turns how the agent process ended into the job's completion (DESIGN §4 error codes).
enum AgentOutcome {
    /// `nil` means the agent finished its task; otherwise the error the job fails with.
    static func failure(stream: AgentStream, termination: ProcessEnd, stderrTail: String, usage: ResourceUsage? = nil) -> JobError? {
        switch termination {
        case .wallClockTimeout(let seconds):
            return JobError(.timeout, "the job ran longer than its \(seconds) s limit",
                            details: .object(["limit": .string("wall_clock"), "seconds": .number(Double(seconds))]))
        case .idleTimeout(let seconds):
            return JobError(.timeout, "the agent produced no output for \(seconds) s",
                            details: .object(["limit": .string("idle"), "seconds": .number(Double(seconds))]))
        case .outputLimit(let bytes):
            return JobError(.resourceLimit, "the agent's output exceeded \(bytes) bytes",
                            details: .object(["limit": .string("output_bytes"), "bytes": .number(Double(bytes))]))
        case .limitExceeded(let limit, let amount):
            return JobError(.resourceLimit, "the job went over its \(limit) limit (\(amount))",
                            details: .object(["limit": .string(limit), "amount": .number(Double(amount))]))
        case .launchFailed(let reason):
            return JobError(.sandboxViolation, "the agent could not be launched: \(reason)")
        case .exited, .signaled:
            break
        }
        if case .exited(125) = termination, let line = stderrTail.split(separator: "\n").last(where: { $0.hasPrefix("jobserver-launch:") }) {
            return JobError(.sandboxViolation, String(line))
        }
        if case .signaled(SIGSYS) = termination {
            return JobError(.sandboxViolation, "the sandbox killed the agent for a forbidden system call",
                            details: .object(["signal": .number(Double(SIGSYS))]))
        }
        if let limit = usage?.limit, stream.result == nil || termination != .exited(0) {
            return JobError(.resourceLimit, "the agent was stopped at the sandbox's \(limit) limit",
                            details: .object(["limit": .string(limit)]))
        }
        if let result = stream.result {
            let isError = result["is_error"]?.boolValue ?? false
            let subtype = result["subtype"]?.stringValue ?? ""
            let message = result["result"]?.stringValue ?? ""
            if let status = result["api_error_status"]?.intValue {
                return apiFailure(status: status, message: message)
            }
            if isError, message.hasPrefix("Not logged in") {
                // The CLI found no credentials at all: the worker has no API key configured.
                return JobError(.apiError, "the agent has no model credentials: set ANTHROPIC_API_KEY for the worker",
                                details: .object(["upstream": .string("not_logged_in")]))
            }
            if subtype == "error_max_turns" {
                return JobError(.agentError, "the agent reached its turn limit before finishing",
                                details: .object(["subtype": .string(subtype), "turns": result["num_turns"] ?? .null]))
            }
            if isError || subtype.hasPrefix("error") {
                let errors = result["errors"]?.arrayValue?.compactMap(\.stringValue).joined(separator: "; ") ?? ""
                return JobError(.agentError, "the agent reported an error: \(errors.isEmpty ? (message.isEmpty ? subtype : message) : errors)",
                                details: .object(["subtype": .string(subtype)]))
            }
            return nil
        }
        if let apiError = stream.apiError {
            return apiError == "rate_limit"
                ? JobError(.rateLimit, "the model API rate-limited the job", details: .object(["upstream": .string(apiError)]))
                : JobError(.apiError, "the model API failed: \(apiError)", details: .object(["upstream": .string(apiError)]))
        }
        let tail = stderrTail.split(separator: "\n").suffix(5).joined(separator: "\n")
        var details: [String: JSONValue] = ["stderr": .string(tail)]
        switch termination {
        case .exited(let code): details["exit_code"] = .number(Double(code))
        case .signaled(let signal): details["signal"] = .number(Double(signal))
        default: break
        }
        return JobError(.agentError, "the agent exited without a result", details: .object(details))
    }

    static func apiFailure(status: Int, message: String) -> JobError {
        let details: JSONValue = .object(["upstream_status": .number(Double(status))])
        if status == 429 {
            return JobError(.rateLimit, "the model API rate-limited the job: \(message)", details: details)
        }
        return JobError(.apiError, "the model API failed with HTTP \(status): \(message)", details: details)
    }
}

/// How the agent process ended, in the worker's terms.
enum ProcessEnd: Sendable, Hashable {
    case exited(Int32)
    case signaled(Int32)
    case wallClockTimeout(seconds: Int)
    case idleTimeout(seconds: Int)
    case outputLimit(bytes: Int)
    case limitExceeded(limit: String, amount: Int64)
    case launchFailed(String)
}
