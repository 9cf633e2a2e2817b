import Foundation
import Hummingbird
import JobServer
import Queue
import TestSupport
import Testing
import Yams

/// Keeps `docs/openapi.yaml` and the router honest with each other: every route the router
/// registers is documented, every documented operation is routed, and the documented error
/// codes, limits and defaults are the ones the code uses.
@Suite struct OpenAPIRouteTests {
    /// One operation, normalized: upper-case method and an OpenAPI-style path template.
    struct Operation: Hashable, Comparable, CustomStringConvertible {
        var method: String
        var path: String
        var description: String { "\(method) \(path)" }
        static func < (lhs: Operation, rhs: Operation) -> Bool { (lhs.path, lhs.method) < (rhs.path, rhs.method) }
    }

    static let httpMethods: Set = ["get", "put", "post", "delete", "options", "head", "patch", "trace"]

    static var specURL: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent()  // JobServerTests
            .deletingLastPathComponent()  // Tests
            .deletingLastPathComponent()  // package root
            .appendingPathComponent("docs/openapi.yaml")
    }

    static func loadSpec() throws -> [String: Any] {
        let text = try String(contentsOf: specURL, encoding: .utf8)
        return try #require(try Yams.load(yaml: text) as? [String: Any], "docs/openapi.yaml is not a YAML mapping")
    }

    /// Normalizes one path: Hummingbird `:name` and OpenAPI `{name}` both become `{name}`, the
    /// catch-all `**` becomes `{path}`, and empty segments and trailing slashes are dropped.
    static func normalize(_ path: String) -> String {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map { segment -> String in
            if segment == "**" { return "{path}" }
            if segment.hasPrefix(":") { return "{\(segment.dropFirst())}" }
            return String(segment)
        }
        return "/" + segments.joined(separator: "/")
    }

    /// The operations `buildRouter` registers.
    static func routedOperations() async throws -> Set<Operation> {
        try await withTemporaryDirectory(prefix: "openapi-routes-") { directory in
            let store = try SQLiteJobStore(path: directory + "/jobs.sqlite")
            let workspaces = WorkspaceStore(root: directory + "/workspaces")
            let router = buildRouter(store: store, workspaces: workspaces)
            let webSocketRouter = buildWebSocketRouter(store: store, workspaces: workspaces, hub: JobEventHub(store: store))
            let routes = router.routes.map { ($0.method, $0.path) } + webSocketRouter.routes.map { ($0.method, $0.path) }
            return Set(routes.map { Operation(method: $0.0.rawValue.uppercased(), path: normalize($0.1.description)) })
        }
    }

    /// The operations the spec documents, with each operation's object.
    static func documentedOperations(_ spec: [String: Any]) throws -> [Operation: [String: Any]] {
        let paths = try #require(spec["paths"] as? [String: Any], "the spec has no paths")
        var operations: [Operation: [String: Any]] = [:]
        for (path, item) in paths {
            let item = try #require(item as? [String: Any], "path item \(path) is not a mapping")
            for (key, value) in item where httpMethods.contains(key.lowercased()) {
                let operation = try #require(value as? [String: Any], "\(key) \(path) is not a mapping")
                operations[Operation(method: key.uppercased(), path: normalize(path))] = operation
            }
        }
        return operations
    }

    static func schema(_ spec: [String: Any], _ name: String) throws -> [String: Any] {
        let components = try #require(spec["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        return try #require(schemas[name] as? [String: Any], "schema \(name) is missing")
    }

    static func property(_ schema: [String: Any], _ name: String) throws -> [String: Any] {
        let properties = try #require(schema["properties"] as? [String: Any])
        return try #require(properties[name] as? [String: Any], "property \(name) is missing")
    }

    // MARK: - Routes

    @Test func normalizationMatchesHummingbirdAndOpenAPISpellings() {
        #expect(Self.normalize("/v1/jobs/:id/cancel") == "/v1/jobs/{id}/cancel")
        #expect(Self.normalize("/v1/jobs/{id}/cancel") == "/v1/jobs/{id}/cancel")
        #expect(Self.normalize("/v1/projects/{project}/files/**") == "/v1/projects/{project}/files/{path}")
        #expect(Self.normalize("v1/projects/") == "/v1/projects")
    }

    @Test func specIsAnOpenAPI31Document() throws {
        let spec = try Self.loadSpec()
        let version = try #require(spec["openapi"] as? String)
        #expect(version.hasPrefix("3.1"), "openapi is \(version)")
        let operations = try Self.documentedOperations(spec)
        #expect(!operations.isEmpty)
        for (operation, object) in operations {
            let responses = object["responses"] as? [String: Any] ?? [:]
            #expect(!responses.isEmpty, "\(operation) documents no responses")
            #expect(object["operationId"] is String, "\(operation) has no operationId")
        }
    }

    @Test func everyRouteIsDocumented() async throws {
        let routed = try await Self.routedOperations()
        let documented = Set(try Self.documentedOperations(try Self.loadSpec()).keys)
        #expect(!routed.isEmpty, "the router registers no routes")
        let missing = routed.subtracting(documented).sorted()
        #expect(missing.isEmpty, "routes missing from docs/openapi.yaml: \(missing.map(\.description).joined(separator: ", "))")
    }

    @Test func everyDocumentedOperationIsRouted() async throws {
        let routed = try await Self.routedOperations()
        let documented = Set(try Self.documentedOperations(try Self.loadSpec()).keys)
        let extra = documented.subtracting(routed).sorted()
        #expect(extra.isEmpty, "documented operations the router does not register: \(extra.map(\.description).joined(separator: ", "))")
    }

    /// Routes outside `/v1` are unauthenticated and documented with `security: []`; every
    /// `/v1` route inherits the global bearer / x-api-key requirement.
    @Test func securityMatchesTheAuthenticatedGroup() async throws {
        let spec = try Self.loadSpec()
        let global = try #require(spec["security"] as? [[String: Any]])
        #expect(Set(global.flatMap(\.keys)) == ["bearerAuth", "apiKey"])
        let components = try #require(spec["components"] as? [String: Any])
        let schemes = try #require(components["securitySchemes"] as? [String: Any])
        let bearer = try #require(schemes["bearerAuth"] as? [String: Any])
        #expect(bearer["type"] as? String == "http" && bearer["scheme"] as? String == "bearer")
        let apiKey = try #require(schemes["apiKey"] as? [String: Any])
        #expect(apiKey["type"] as? String == "apiKey" && apiKey["in"] as? String == "header" && apiKey["name"] as? String == "x-api-key")

        let documented = try Self.documentedOperations(spec)
        // Streams also take the token the ways browsers can send it (subprotocol, query).
        let streams: [Operation: Set<String>] = [
            Operation(method: "GET", path: "/v1/jobs/{id}/stream"): ["bearerAuth", "apiKey", "tokenSubprotocol", "tokenQuery"],
            Operation(method: "GET", path: "/v1/stream"): ["bearerAuth", "apiKey", "tokenSubprotocol", "tokenQuery"],
            Operation(method: "GET", path: "/v1/jobs/{id}/events"): ["bearerAuth", "apiKey", "tokenQuery"],
        ]
        for operation in try await Self.routedOperations() {
            guard let object = documented[operation] else { continue }  // reported by everyRouteIsDocumented
            let overrides = object["security"] != nil
            let security = object["security"] as? [Any] ?? []
            if let schemes = streams[operation] {
                let listed = Set((security as? [[String: Any]] ?? []).flatMap(\.keys))
                #expect(listed == schemes, "\(operation) documents \(listed.sorted())")
            } else if operation.path.hasPrefix("/v1/") || operation.path == "/v1" {
                #expect(!overrides, "\(operation) must not override the global security")
            } else {
                #expect(overrides && security.isEmpty, "\(operation) is unauthenticated and must say security: []")
            }
        }
    }

    // MARK: - Contract details

    /// Every close code the streams use is documented with the error code it stands for, and
    /// every close reason fits a close frame.
    @Test func webSocketCloseCodesMatchTheCode() throws {
        let schema = try Self.schema(try Self.loadSpec(), "WebSocketCloseCode")
        let documented = (schema["enum"] as? [Any] ?? []).compactMap { $0 as? Int }
        let raw = try #require(schema["x-close-codes"] as? [AnyHashable: Any], "x-close-codes is missing")
        let table = Dictionary(uniqueKeysWithValues: raw.compactMap { key, value in Int("\(key)").map { ($0, value) } })
        #expect(Set(table.keys) == Set(documented))
        let used = Set(StreamFailure.kinds.map { Int($0.closeCode.rawValue) })
            .union([Int(WebSocketCloseCode.normal.rawValue), Int(WebSocketCloseCode.goingAway.rawValue)])
        #expect(used == Set(documented), "used \(used.sorted()), documented \(documented.sorted())")
        for failure in StreamFailure.kinds {
            let entry = try #require(table[Int(failure.closeCode.rawValue)] as? [String: Any])
            #expect(entry["error_code"] as? String == failure.code.rawValue)
            #expect(failure.closeCode.errorCode == failure.code)
            #expect(failure.closeReason.utf8.count <= 123)
            #expect(JSONValue.parse(failure.closeReason)?["error"]?["code"]?.stringValue == failure.code.rawValue)
        }
        for code in ErrorCode.allCases {
            #expect(WebSocketCloseCode(code).errorCode == code, "\(code.rawValue)")
            let long = StreamFailure(code, String(repeating: "é", count: 200), details: ["path": .string(String(repeating: "x", count: 300))])
            #expect(long.closeReason.utf8.count <= 123 && JSONValue.parse(long.closeReason) != nil, "\(code.rawValue)")
        }
    }

    @Test func errorCodesMatchErrorCode() throws {
        let spec = try Self.loadSpec()
        let codes = try Self.schema(spec, "ErrorCode")
        let documented = (codes["enum"] as? [Any] ?? []).compactMap { $0 as? String }
        #expect(documented == ErrorCode.allCases.map(\.rawValue))
        let names = (try Self.schema(spec, "ErrorName")["enum"] as? [Any] ?? []).compactMap { $0 as? String }
        #expect(names == ErrorCode.allCases.map(\.name))
        let table = try #require(codes["x-error-codes"] as? [String: Any])
        for code in ErrorCode.allCases {
            let entry = try #require(table[code.rawValue] as? [String: Any], "x-error-codes lacks \(code.rawValue)")
            #expect(entry["name"] as? String == code.name, "\(code.rawValue)")
            #expect(entry["retryable"] as? Bool == code.retryable, "\(code.rawValue) retryable")
        }
        let envelope = try Self.property(try Self.schema(spec, "ErrorEnvelope"), "error")
        #expect(Set(envelope["required"] as? [String] ?? []) == ["code", "name", "message", "status", "retryable", "details"])
    }

    @Test func jobOptionsMatchTheCode() throws {
        let spec = try Self.loadSpec()
        let options = try Self.schema(spec, "JobOptions")
        #expect(options["additionalProperties"] as? Bool == false)
        // The keys JobOptions encodes (with every optional field set) are the documented ones.
        var sample = JobOptions(kind: .review)
        sample.maxTurns = 1
        sample.model = "m"
        let encoded = try #require(try JSONValue.parse(String(decoding: JSONEncoder().encode(sample), as: UTF8.self))?.objectValue)
        let properties = try #require(options["properties"] as? [String: Any])
        #expect(Set(properties.keys) == Set(encoded.keys))

        func range(_ name: String) throws -> ClosedRange<Int>? {
            let property = try Self.property(options, name)
            guard let low = property["minimum"] as? Int, let high = property["maximum"] as? Int else { return nil }
            return low...high
        }
        #expect(try range("timeout_s") == 1...JobRequest.Limits.maxTimeoutSeconds)
        #expect(try range("idle_timeout_s") == 1...JobRequest.Limits.maxTimeoutSeconds)
        #expect(try range("max_turns") == 1...JobRequest.Limits.maxTurns)
        #expect(try range("max_attempts") == 1...JobRequest.Limits.maxAttempts)
        let defaults = JobOptions(kind: .generate)
        #expect(try Self.property(options, "timeout_s")["default"] as? Int == defaults.timeoutSeconds)
        #expect(try Self.property(options, "idle_timeout_s")["default"] as? Int == defaults.idleTimeoutSeconds)
        #expect(try Self.property(options, "max_attempts")["default"] as? Int == defaults.maxAttempts)
        #expect(try Self.property(options, "severity")["default"] as? String == defaults.severity)
        #expect(try Self.property(options, "dry_run")["default"] as? Bool == defaults.dryRun)
        #expect(try Self.property(options, "fix")["default"] as? Bool == defaults.fix)
        let severities = (try Self.property(options, "severity")["enum"] as? [Any] ?? []).compactMap { $0 as? String }
        #expect(severities == JobRequest.Limits.severities)
        let formats = (try Self.property(options, "format")["enum"] as? [Any] ?? []).compactMap { $0 as? String }
        #expect(Set(formats) == ["json", "text"])
    }

    @Test func jobRequestMatchesTheCode() throws {
        let spec = try Self.loadSpec()
        let request = try Self.schema(spec, "JobRequest")
        #expect(request["additionalProperties"] as? Bool == false)
        #expect(Set(request["required"] as? [String] ?? []) == ["type", "project", "prompt"])
        let properties = try #require(request["properties"] as? [String: Any])
        #expect(Set(properties.keys) == ["type", "project", "prompt", "files", "options", "metadata", "priority"])
        #expect(try Self.property(request, "prompt")["maxLength"] as? Int == JobRequest.Limits.promptBytes)
        #expect(try Self.property(request, "files")["maxItems"] as? Int == JobRequest.Limits.files)
        let priority = try Self.property(request, "priority")
        #expect(priority["minimum"] as? Int == JobRequest.Limits.priorities.lowerBound)
        #expect(priority["maximum"] as? Int == JobRequest.Limits.priorities.upperBound)
        let types = (try Self.schema(spec, "JobType")["enum"] as? [Any] ?? []).compactMap { $0 as? String }
        #expect(Set(types) == Set(JobKind.allCases.map(\.rawValue)))
        let statuses = (try Self.schema(spec, "JobStatus")["enum"] as? [Any] ?? []).compactMap { $0 as? String }
        #expect(Set(statuses) == Set(JobStatus.allCases.map(\.rawValue)))
    }

    @Test func submitDocumentsLocationIdempotencyAndPagination() throws {
        let spec = try Self.loadSpec()
        let operations = try Self.documentedOperations(spec)
        let submit = try #require(operations[Operation(method: "POST", path: "/v1/jobs")])
        let responses = try #require(submit["responses"] as? [String: Any])
        let accepted = try #require(responses["202"] as? [String: Any], "submit must document 202")
        let headers = try #require(accepted["headers"] as? [String: Any])
        #expect(headers["Location"] != nil)
        #expect(headers["Idempotent-Replayed"] != nil)
        let parameters = try #require(submit["parameters"] as? [[String: Any]])
        #expect(parameters.contains { ($0["$ref"] as? String)?.hasSuffix("/IdempotencyKey") == true })

        let list = try #require(operations[Operation(method: "GET", path: "/v1/jobs")])
        let names = Set((list["parameters"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
        #expect(names.isSuperset(of: ["limit", "cursor", "status", "type", "project"]))
        let page = try Self.schema(spec, "JobPage")
        #expect(Set(page["required"] as? [String] ?? []) == ["jobs", "next_cursor"])

        let put = try #require(operations[Operation(method: "PUT", path: "/v1/projects/{project}/files/{path}")])
        let putResponses = try #require(put["responses"] as? [String: Any])
        #expect(putResponses["201"] != nil && putResponses["200"] != nil)
        let delete = try #require(operations[Operation(method: "DELETE", path: "/v1/projects/{project}/files/{path}")])
        #expect((delete["responses"] as? [String: Any])?["204"] != nil)
        let archive = try #require(operations[Operation(method: "GET", path: "/v1/projects/{project}/archive")])
        let archiveOK = try #require((archive["responses"] as? [String: Any])?["200"] as? [String: Any])
        #expect((archiveOK["content"] as? [String: Any])?["application/gzip"] != nil)
    }

    // MARK: - Rendered shapes

    /// Checks a rendered object against a component schema's `properties` and `required`.
    static func expectShape(_ value: JSONValue?, _ schemaName: String, in spec: [String: Any],
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        let object = try #require(value?.objectValue, "\(schemaName): not an object", sourceLocation: sourceLocation)
        let schema = try schema(spec, schemaName)
        let properties = Set((schema["properties"] as? [String: Any] ?? [:]).keys)
        let required = Set(schema["required"] as? [String] ?? [])
        let keys = Set(object.keys)
        #expect(keys.subtracting(properties).isEmpty, "\(schemaName) renders undocumented fields \(keys.subtracting(properties).sorted())",
                sourceLocation: sourceLocation)
        #expect(required.subtracting(keys).isEmpty, "\(schemaName) lacks required fields \(required.subtracting(keys).sorted())",
                sourceLocation: sourceLocation)
    }

    /// What the API really renders has exactly the documented fields.
    @Test func renderedShapesMatchTheSpec() async throws {
        try await withAPI { fixture, client in
            let spec = try Self.loadSpec()
            let alice = fixture.alice
            let written = try await client.send(.put, "/v1/projects/app/files/src/a.py", as: alice, bytes: Array("a".utf8))
            try Self.expectShape(written.json, "FileWritten", in: spec)
            let files = try await client.send(.get, "/v1/projects/app/files", as: alice)
            try Self.expectShape(files.json, "FileList", in: spec)
            try Self.expectShape(files.json?["files"]?.arrayValue?.first, "FileInfo", in: spec)

            let submitted = try await client.submit(
                #"{"type":"review","project":"app","prompt":"p","files":["src/a.py"],"options":{"max_turns":3,"model":"m"}}"#, as: alice)
            try Self.expectShape(submitted.json, "Job", in: spec)
            try Self.expectShape(submitted.json?["options"], "ResolvedJobOptions", in: spec)
            let id = try #require(submitted.json?["id"]?.stringValue)
            let page = try await client.send(.get, "/v1/jobs?limit=1", as: alice)
            try Self.expectShape(page.json, "JobPage", in: spec)
            let cancelled = try await client.send(.post, "/v1/jobs/\(id)/cancel", as: alice)
            try Self.expectShape(cancelled.json, "Job", in: spec)
            try Self.expectShape(cancelled.json?["error"], "JobError", in: spec)
            let events = try await client.send(.get, "/v1/jobs/\(id)/events", as: alice)
            try Self.expectShape(events.json, "EventPage", in: spec)

            let error = try await client.send(.get, "/v1/jobs/nope", as: alice)
            try Self.expectShape(error.json, "ErrorEnvelope", in: spec)
            #expect(error.isWellFormedEnvelope)

            let archive = try await client.send(.get, "/v1/projects/app/archive", as: alice)
            let upload = try await client.send(.put, "/v1/projects/copy/archive", as: alice, bytes: archive.bytes)
            try Self.expectShape(upload.json, "ArchiveSummary", in: spec)
        }
    }
}
