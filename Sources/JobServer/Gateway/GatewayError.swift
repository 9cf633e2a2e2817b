/// Why a model gateway could not be started.
///
/// These are the only errors ``withModelGateway(_:httpClient:logger:body:)`` throws itself;
/// anything else it throws comes from the caller's `body`. Requests that go wrong while the
/// gateway runs never surface here: they are answered (``GatewayErrorReply``), counted and logged.
public enum GatewayError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The configuration cannot work (no listener, empty key, unusable upstream URL, …).
    case invalidConfiguration(String)
    /// A listener could not be bound (socket path too long, not a socket, address in use, …).
    case bindFailed(address: String, reason: String)

    public var description: String {
        switch self {
        case .invalidConfiguration(let reason):
            "invalid model gateway configuration: \(reason)"
        case .bindFailed(let address, let reason):
            "model gateway could not listen on \(address): \(reason)"
        }
    }
}
