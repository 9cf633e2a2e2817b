/// The stable error codes of the service (DESIGN §4).
///
/// Codes are part of the public contract: clients branch on them, so a code's meaning never
/// changes once published. Every failure the service reports — an HTTP error body, a job's
/// `error`, a WebSocket close reason — carries exactly one of these.
public enum ErrorCode: String, Sendable, Codable, CaseIterable, Hashable {
    case timeout = "E001"
    case rateLimit = "E002"
    case invalidRequest = "E003"
    case fileAccess = "E004"
    case apiError = "E005"
    case sandboxViolation = "E006"
    case cancelled = "E007"
    case resourceLimit = "E008"
    case agentError = "E009"
    case workerLost = "E010"
    case unauthorized = "E011"
    case notFound = "E013"
    case conflict = "E014"
    case queueFull = "E015"
    case `internal` = "E500"

    /// The symbolic name published next to the code (`"TIMEOUT"` for `E001`).
    public var name: String {
        switch self {
        case .timeout: "TIMEOUT"
        case .rateLimit: "RATE_LIMIT"
        case .invalidRequest: "INVALID_REQUEST"
        case .fileAccess: "FILE_ACCESS"
        case .apiError: "API_ERROR"
        case .sandboxViolation: "SANDBOX_VIOLATION"
        case .cancelled: "CANCELLED"
        case .resourceLimit: "RESOURCE_LIMIT"
        case .agentError: "AGENT_ERROR"
        case .workerLost: "WORKER_LOST"
        case .unauthorized: "UNAUTHORIZED"
        case .notFound: "NOT_FOUND"
        case .conflict: "CONFLICT"
        case .queueFull: "QUEUE_FULL"
        case .internal: "INTERNAL"
        }
    }

    /// Whether repeating the same request or job later can succeed.
    public var retryable: Bool {
        switch self {
        case .timeout, .rateLimit, .apiError, .workerLost, .queueFull, .internal: true
        default: false
        }
    }

    /// The HTTP status an API answer with this code uses when nothing more specific applies.
    public var defaultHTTPStatus: Int {
        switch self {
        case .rateLimit: 429
        case .invalidRequest: 400
        case .fileAccess: 400
        case .unauthorized: 401
        case .notFound: 404
        case .conflict: 409
        case .queueFull: 503
        case .resourceLimit: 413
        default: 500
        }
    }
}
