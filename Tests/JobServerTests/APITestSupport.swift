import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import JobServer
import Logging
import NIOCore
import Queue
import TestSupport
import Testing

/// A user of the API under test with a live token.
struct APITestUser: Sendable {
    var user: User
    var secret: String
    var tokenID: String

    var id: UserID { user.id }

    /// `Authorization: Bearer <secret>`.
    var bearer: HTTPFields { [.authorization: "Bearer \(secret)"] }
}

/// A real SQLite store file and a real workspace root in a fresh temporary directory, with
/// two users (`alice`, `bob`) holding live tokens, and the router of `buildRouter`.
struct APIFixture: Sendable {
    let directory: String
    let store: SQLiteJobStore
    let workspaces: WorkspaceStore
    let alice: APITestUser
    let bob: APITestUser

    var workspaceRoot: String { workspaces.root }

    static func make(in directory: String, limits: WorkspaceLimits = WorkspaceLimits()) async throws -> APIFixture {
        let store = try SQLiteJobStore(path: directory + "/jobs.sqlite")
        let workspaces = WorkspaceStore(root: directory + "/workspaces", limits: limits)
        let alice = try await addUser("alice", to: store)
        let bob = try await addUser("bob", to: store)
        return APIFixture(directory: directory, store: store, workspaces: workspaces, alice: alice, bob: bob)
    }

    /// Creates a user and one live token through the store, the way `jobserver admin` does.
    static func addUser(_ name: String, to store: SQLiteJobStore) async throws -> APITestUser {
        let user = try await store.createUser(name: name)
        let secret = TokenHasher.makeSecret()
        let tokenID = TokenHasher.makeTokenID()
        try await store.addToken(APIToken(id: tokenID, userID: user.id, label: "test", createdAt: Date()),
                                 secretHash: TokenHasher.hash(secret))
        return APITestUser(user: user, secret: secret, tokenID: tokenID)
    }

    func application() -> some ApplicationProtocol {
        var logger = Logger(label: "api-tests")
        logger.logLevel = .critical
        return Application(router: buildRouter(store: store, workspaces: workspaces), logger: logger)
    }

    /// Every path (relative, sorted) below the workspace root, to prove a request touched nothing.
    func workspaceTree() -> [String] {
        guard let enumerator = FileManager.default.enumerator(atPath: workspaceRoot) else { return [] }
        return (enumerator.allObjects as? [String] ?? []).sorted()
    }
}

/// Runs `body` against a fresh fixture served by the in-process router test client; the
/// temporary directory is removed afterwards.
func withAPI(
    limits: WorkspaceLimits = WorkspaceLimits(),
    _ body: @escaping @Sendable (APIFixture, any TestClientProtocol) async throws -> Void
) async throws {
    try await withTemporaryDirectory(prefix: "api-test-") { directory in
        let fixture = try await APIFixture.make(in: directory, limits: limits)
        try await fixture.application().test(.router) { client in
            try await body(fixture, client)
        }
    }
}

/// A response with helpers for the JSON body and the error envelope.
struct APIResponse: Sendable, CustomStringConvertible {
    var status: HTTPResponse.Status
    var headers: HTTPFields
    var body: ByteBuffer

    var bytes: [UInt8] { Array(body.readableBytesView) }
    var text: String { String(decoding: body.readableBytesView, as: UTF8.self) }
    var json: JSONValue? { JSONValue.parse(text) }

    /// `error.code` of the envelope, when the body is one.
    var errorCode: String? { json?["error"]?["code"]?.stringValue }
    /// `error.details.field`.
    var errorField: String? { json?["error"]?["details"]?["field"]?.stringValue }
    var errorDetails: JSONValue? { json?["error"]?["details"] }

    var description: String { "\(status.code) \(text.prefix(400))" }

    /// Whether the body is a complete, well-formed error envelope whose `status` matches the
    /// HTTP status and whose `name`/`retryable` match the code.
    var isWellFormedEnvelope: Bool {
        guard let error = json?["error"], let codeText = error["code"]?.stringValue,
              let code = ErrorCode(rawValue: codeText) else { return false }
        return error["name"]?.stringValue == code.name
            && error["message"]?.stringValue?.isEmpty == false
            && error["status"]?.intValue == status.code
            && error["retryable"]?.boolValue == code.retryable
            && error["details"]?.objectValue != nil
            && headers[.contentType] == "application/json"
    }
}

extension TestClientProtocol {
    /// Sends one request; `json` is sent as `application/json`, `bytes` as raw body.
    func send(
        _ method: HTTPRequest.Method, _ uri: String, as user: APITestUser? = nil,
        json: String? = nil, bytes: [UInt8]? = nil, contentType: String? = nil,
        headers extra: HTTPFields = [:]
    ) async throws -> APIResponse {
        var headers = user?.bearer ?? [:]
        var body: ByteBuffer?
        if let json {
            body = ByteBuffer(string: json)
            headers[.contentType] = contentType ?? "application/json"
        } else if let bytes {
            body = ByteBuffer(bytes: bytes)
            if let contentType { headers[.contentType] = contentType }
        }
        headers.append(contentsOf: extra)
        let response = try await execute(uri: uri, method: method, headers: headers, body: body)
        return APIResponse(status: response.status, headers: response.headers, body: response.body)
    }

    /// Submits a job as `user` with a JSON body.
    func submit(_ json: String, as user: APITestUser, headers: HTTPFields = [:]) async throws -> APIResponse {
        try await send(.post, "/v1/jobs", as: user, json: json, headers: headers)
    }

    /// Submits a valid `generate` job and returns its id.
    func submitJob(as user: APITestUser, project: String = "app", prompt: String = "write hello world",
                   sourceLocation: SourceLocation = #_sourceLocation) async throws -> String {
        let response = try await submit(#"{"type":"generate","project":"\#(project)","prompt":"\#(prompt)"}"#, as: user)
        #expect(response.status == .accepted, "\(response)", sourceLocation: sourceLocation)
        return try #require(response.json?["id"]?.stringValue, sourceLocation: sourceLocation)
    }
}

/// Asserts an error answer: HTTP status, a well-formed envelope with `code`, and
/// `details.field` when given.
func expectError(
    _ response: APIResponse, _ status: HTTPResponse.Status, _ code: ErrorCode, field: String? = nil,
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(response.status == status, "\(response)", sourceLocation: sourceLocation)
    #expect(response.errorCode == code.rawValue, "\(response)", sourceLocation: sourceLocation)
    #expect(response.isWellFormedEnvelope, "\(response)", sourceLocation: sourceLocation)
    if let field {
        #expect(response.errorField == field, "\(response)", sourceLocation: sourceLocation)
    }
}

/// JSON string literal of `text` (quoted, escaped).
func jsonString(_ text: String) -> String {
    JSONValue.string(text).jsonText()
}

/// Runs `tar` with `arguments` in `directory`; returns its standard output.
@discardableResult
func runTar(_ arguments: [String], in directory: String) throws -> [UInt8] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") ? "/usr/bin/tar" : "/bin/tar")
    process.arguments = arguments
    process.currentDirectoryURL = URL(fileURLWithPath: directory)
    let output = Pipe()
    process.standardOutput = output
    process.standardError = FileHandle.nullDevice
    try process.run()
    let data = output.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw TarFailure(arguments: arguments, status: process.terminationStatus)
    }
    return Array(data)
}

struct TarFailure: Error, CustomStringConvertible {
    var arguments: [String]
    var status: Int32
    var description: String { "tar \(arguments.joined(separator: " ")) exited with \(status)" }
}

/// Header names used by the API.
enum AuthHeader {
    static let apiKey = HTTPField.Name("x-api-key")!
    static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    static let replayed = HTTPField.Name("Idempotent-Replayed")!
}
