import Foundation

/// How each job kind drives the Claude Code CLI: the tools it may use, its turn budget, the
/// instructions appended to the system prompt, and the structured result it must end with.
struct AgentProfile: Sendable, Hashable {
    enum Structured: Sendable, Hashable {
        case none
        /// `{"summary", "analysis": {…}, "suggestions": […]}`
        case analysis
        /// `{"summary", "findings": [{"file", "line", "severity", "message", "suggestion"}]}`
        case findings
    }

    var tools: [String]
    var defaultMaxTurns: Int
    var systemPrompt: String
    var structured: Structured
    /// Whether the job's changes are applied back to the project.
    var writes: Bool

    static let readTools = ["Read", "Glob", "Grep"]
    static let writeTools = ["Read", "Write", "Edit", "Bash", "Glob", "Grep"]

    static func profile(for request: JobRequest) -> AgentProfile {
        let scope = request.files.isEmpty ? "" : " Focus on these files: \(request.files.joined(separator: ", "))."
        switch request.type {
        case .generate:
            return AgentProfile(
                tools: writeTools, defaultMaxTurns: 30,
                systemPrompt: "You are writing new code in the project in the current directory. Create or change files there only." + scope,
                structured: .none, writes: true)
        case .refactor:
            return AgentProfile(
                tools: writeTools, defaultMaxTurns: 30,
                systemPrompt: "You are refactoring code in the project in the current directory without changing its behaviour." + scope,
                structured: .none, writes: true)
        case .analyze:
            return AgentProfile(
                tools: readTools, defaultMaxTurns: 20,
                systemPrompt: """
                You are analyzing the project in the current directory. Do not modify any file.\(scope)
                \(request.options.format == "json" ? """
                End your final answer with one JSON object in a ```json fenced block, with the keys \
                "summary" (string), "analysis" (object) and "suggestions" (array of strings).
                """ : "")
                """,
                structured: request.options.format == "json" ? .analysis : .none, writes: false)
        case .review:
            let fix = request.options.fix
            return AgentProfile(
                tools: fix ? writeTools : readTools, defaultMaxTurns: 20,
                systemPrompt: """
                You are reviewing the code in the current directory.\(fix ? " Fix the problems you find." : " Do not modify any file.")\(scope)
                Report findings of severity \(request.options.severity) or higher (info < warning < error < critical).
                \(request.options.format == "json" ? """
                End your final answer with one JSON object in a ```json fenced block, with the keys "summary" (string) and \
                "findings" (array of objects with "file", "line", "severity", "message", "suggestion").
                """ : "")
                """,
                structured: request.options.format == "json" ? .findings : .none, writes: fix)
        }
    }

    /// The CLI's arguments for this job (after the executable).
    func arguments(for request: JobRequest) -> [String] {
        var arguments = [
            "-p", request.prompt,
            "--output-format", "stream-json", "--verbose",
            // Token deltas as `stream_event` lines, so clients watch text arrive word by word.
            "--include-partial-messages",
            "--tools", tools.joined(separator: ","),
            "--allowedTools", tools.joined(separator: ","),
            "--permission-mode", "dontAsk",
            "--max-turns", String(request.options.maxTurns ?? defaultMaxTurns),
            "--append-system-prompt", systemPrompt,
            // Nothing from the user's project may configure the agent: no settings files
            // (hooks run commands), no MCP servers, no saved sessions.
            "--setting-sources", "",
            "--strict-mcp-config",
            "--no-session-persistence",
        ]
        if let model = request.options.model { arguments += ["--model", model] }
        return arguments
    }
}
