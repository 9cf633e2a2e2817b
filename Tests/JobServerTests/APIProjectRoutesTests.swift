import Foundation
import HTTPTypes
import HummingbirdTesting
import JobServer
import NIOCore
import Queue
import TestSupport
import Testing

/// Workspace files, archives, probes, and regressions found by review, through the real router.
extension APIValidationTests {
    // MARK: - Files

    @Test func fileRoundTrip() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            let content = Array("print('hello')\n".utf8)
            let created = try await client.send(.put, "/v1/projects/app/files/src/main.py", as: alice, bytes: content)
            #expect(created.status == .created, "\(created)")
            #expect(created.json == .object(["project": .string("app"), "path": .string("src/main.py"), "bytes": .number(Double(content.count))]))
            let replaced = try await client.send(.put, "/v1/projects/app/files/src/main.py", as: alice, bytes: Array("v2\n".utf8))
            #expect(replaced.status == .ok, "\(replaced)")
            #expect(replaced.json?["bytes"]?.intValue == 3)
            #expect(try await client.send(.put, "/v1/projects/app/files/README.md", as: alice, bytes: []).status == .created)

            let read = try await client.send(.get, "/v1/projects/app/files/src/main.py", as: alice)
            #expect(read.status == .ok)
            #expect(read.headers[.contentType] == "application/octet-stream")
            #expect(read.bytes == Array("v2\n".utf8))
            // A percent-encoded slash names the same file.
            #expect(try await client.send(.get, "/v1/projects/app/files/src%2Fmain.py", as: alice).bytes == Array("v2\n".utf8))

            let list = try await client.send(.get, "/v1/projects/app/files", as: alice)
            #expect(list.status == .ok)
            #expect(list.json?["project"] == .string("app"))
            let files = try #require(list.json?["files"]?.arrayValue)
            #expect(files.compactMap { $0["path"]?.stringValue } == ["README.md", "src/main.py"])
            #expect(files.compactMap { $0["bytes"]?.intValue } == [0, 3])
            #expect(files.allSatisfy { $0["modified_at"] != nil && $0["modified_at"] != .null })

            let projects = try await client.send(.get, "/v1/projects", as: alice)
            #expect(projects.json == .object(["projects": .array([.object(["name": .string("app")])])]))

            let deleted = try await client.send(.delete, "/v1/projects/app/files/src/main.py", as: alice)
            #expect(deleted.status == .noContent)
            #expect(deleted.body.readableBytes == 0)
            expectError(try await client.send(.get, "/v1/projects/app/files/src/main.py", as: alice), .notFound, .notFound)
            expectError(try await client.send(.delete, "/v1/projects/app/files/src/main.py", as: alice), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/nothing/files", as: alice), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/nothing/files/a.txt", as: alice), .notFound, .notFound)
            // The file is gone from disk too.
            let onDisk = try fixture.workspaces.projectPath(user: alice.id, project: ProjectName(validating: "app")) + "/src/main.py"
            #expect(!FileManager.default.fileExists(atPath: onDisk))
        }
    }

    @Test func fileAndDirectoryClashesAreFileAccessErrors() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            #expect(try await client.send(.put, "/v1/projects/app/files/a", as: alice, bytes: [1]).status == .created)
            expectError(try await client.send(.put, "/v1/projects/app/files/a/b", as: alice, bytes: [2]), .badRequest, .fileAccess)
            #expect(try await client.send(.put, "/v1/projects/app/files/d/f", as: alice, bytes: [3]).status == .created)
            expectError(try await client.send(.put, "/v1/projects/app/files/d", as: alice, bytes: [4]), .badRequest, .fileAccess)
            let readDirectory = try await client.send(.get, "/v1/projects/app/files/d", as: alice)
            #expect(readDirectory.status.code < 500 && readDirectory.errorCode != nil, "\(readDirectory)")
            let deleteDirectory = try await client.send(.delete, "/v1/projects/app/files/d", as: alice)
            #expect(deleteDirectory.status.code < 500 && deleteDirectory.errorCode != nil, "\(deleteDirectory)")
            #expect(try await client.send(.get, "/v1/projects/app/files/d/f", as: alice).bytes == [3])
        }
    }

    @Test func traversalIsRefusedWithoutTouchingTheDisk() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            #expect(try await client.send(.put, "/v1/projects/app/files/keep.txt", as: alice, bytes: Array("keep".utf8)).status == .created)
            let before = fixture.workspaceTree()
            let directoryBefore = try FileManager.default.contentsOfDirectory(atPath: fixture.directory).sorted()
            let hostile = [
                "%2e%2e/x", "a/%2e%2e/%2e%2e/etc/passwd", "%2E%2E/%2E%2E/x", "..%2Fx", "a/..%2f..%2fx", "%2Fetc%2Fpasswd",
                "..", "a/../../x", ".", "a/./b", "a%00b", "%00", "a%5Cb", "a%0Ab", String(repeating: "n", count: 256),
                "%2e%2e", "..%2F..%2F..%2Fjobs.sqlite",
            ]
            for path in hostile {
                for method in [HTTPRequest.Method.put, .get, .delete] {
                    let response = try await client.send(method, "/v1/projects/app/files/\(path)", as: alice,
                                                         bytes: method == .put ? Array("pwned".utf8) : nil)
                    expectError(response, .badRequest, .fileAccess)
                    #expect(response.errorDetails?["path"]?.stringValue != nil, "\(method) \(path): \(response)")
                }
            }
            // Bad project names on the file routes are E003.
            for project in [".hidden", "%2e%2e", "..", "a%2Fb", String(repeating: "p", count: 65)] {
                expectError(try await client.send(.put, "/v1/projects/\(project)/files/x", as: alice, bytes: [1]),
                            .badRequest, .invalidRequest)
                expectError(try await client.send(.get, "/v1/projects/\(project)/files", as: alice), .badRequest, .invalidRequest)
                expectError(try await client.send(.get, "/v1/projects/\(project)/archive", as: alice), .badRequest, .invalidRequest)
            }
            #expect(fixture.workspaceTree() == before)
            #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.directory).sorted() == directoryBefore)
            #expect(try await client.send(.get, "/v1/projects/app/files/keep.txt", as: alice).bytes == Array("keep".utf8))
        }
    }

    @Test func anotherUsersProjectIsInvisible() async throws {
        try await withAPI { fixture, client in
            #expect(try await client.send(.put, "/v1/projects/secret/files/plan.txt", as: fixture.alice, bytes: Array("alice".utf8)).status == .created)
            let bob = fixture.bob
            expectError(try await client.send(.get, "/v1/projects/secret/files/plan.txt", as: bob), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/secret/files", as: bob), .notFound, .notFound)
            expectError(try await client.send(.get, "/v1/projects/secret/archive", as: bob), .notFound, .notFound)
            expectError(try await client.send(.delete, "/v1/projects/secret/files/plan.txt", as: bob), .notFound, .notFound)
            #expect(try await client.send(.get, "/v1/projects", as: bob).json == .object(["projects": .array([])]))
            // Bob's project of the same name is his own.
            #expect(try await client.send(.put, "/v1/projects/secret/files/plan.txt", as: bob, bytes: Array("bob".utf8)).status == .created)
            #expect(try await client.send(.get, "/v1/projects/secret/files/plan.txt", as: bob).bytes == Array("bob".utf8))
            #expect(try await client.send(.get, "/v1/projects/secret/files/plan.txt", as: fixture.alice).bytes == Array("alice".utf8))
        }
    }

    @Test func oversizedFilesAre413() async throws {
        let limits = WorkspaceLimits(maxFileBytes: 1024, maxFilesPerProject: 3, maxProjectBytes: 2500)
        try await withAPI(limits: limits) { fixture, client in
            let alice = fixture.alice
            let tooBig = try await client.send(.put, "/v1/projects/app/files/big.bin", as: alice, bytes: Array(repeating: 7, count: 1025))
            expectError(tooBig, .contentTooLarge, .fileAccess)
            #expect(tooBig.errorDetails?["limit"]?.intValue == 1024)
            #expect(try await client.send(.put, "/v1/projects/app/files/a.bin", as: alice, bytes: Array(repeating: 1, count: 1024)).status == .created)
            #expect(try await client.send(.put, "/v1/projects/app/files/b.bin", as: alice, bytes: Array(repeating: 2, count: 1024)).status == .created)
            // Past the project's byte quota: E008.
            let quota = try await client.send(.put, "/v1/projects/app/files/c.bin", as: alice, bytes: Array(repeating: 3, count: 1000))
            expectError(quota, .contentTooLarge, .resourceLimit)
            #expect(quota.errorDetails?["limit"]?.intValue == 2500)
            #expect(try await client.send(.put, "/v1/projects/app/files/c.bin", as: alice, bytes: [3]).status == .created)
            // Past the file-count quota: E008.
            expectError(try await client.send(.put, "/v1/projects/app/files/d.bin", as: alice, bytes: [4]), .contentTooLarge, .resourceLimit)
            let listed = try await client.send(.get, "/v1/projects/app/files", as: alice)
            #expect(listed.json?["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["a.bin", "b.bin", "c.bin"])
        }
    }

    // MARK: - Archives

    @Test func garbageArchivesAreRefusedAndLeaveTheProjectAlone() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            #expect(try await client.send(.put, "/v1/projects/app/files/keep.txt", as: alice, bytes: Array("keep".utf8)).status == .created)
            let garbage: [[UInt8]] = [
                Array("this is not a gzip stream".utf8),
                [],
                [0x1F, 0x8B, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00],  // a truncated gzip header
            ]
            for bytes in garbage {
                let response = try await client.send(.put, "/v1/projects/app/archive", as: alice, bytes: bytes, contentType: "application/gzip")
                expectError(response, .badRequest, .fileAccess)
            }
            // A gzip of something that is not a tar.
            try await withTemporaryDirectory(prefix: "api-archive-") { scratch in
                try Data("plain text, not a tar archive\n".utf8).write(to: URL(fileURLWithPath: scratch + "/notes.txt"))
                let process = Process()
                process.executableURL = URL(fileURLWithPath: "/bin/sh")
                process.arguments = ["-c", "gzip -c notes.txt > notes.gz"]
                process.currentDirectoryURL = URL(fileURLWithPath: scratch)
                try process.run()
                process.waitUntilExit()
                #expect(process.terminationStatus == 0)
                let gz = try [UInt8](Data(contentsOf: URL(fileURLWithPath: scratch + "/notes.gz")))
                expectError(try await client.send(.put, "/v1/projects/app/archive", as: alice, bytes: gz), .badRequest, .fileAccess)

                // An archive holding a symbolic link is refused.
                try FileManager.default.createDirectory(atPath: scratch + "/tree", withIntermediateDirectories: true)
                try FileManager.default.createSymbolicLink(atPath: scratch + "/tree/link", withDestinationPath: "/etc/passwd")
                let linked = try runTar(["czf", "-", "-C", scratch + "/tree", "link"], in: scratch)
                expectError(try await client.send(.put, "/v1/projects/app/archive", as: alice, bytes: linked), .badRequest, .fileAccess)
            }
            let listed = try await client.send(.get, "/v1/projects/app/files", as: alice)
            #expect(listed.json?["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["keep.txt"])
            // A refused upload does not create a project either.
            expectError(try await client.send(.put, "/v1/projects/fresh/archive", as: alice, bytes: Array("junk".utf8)), .badRequest, .fileAccess)
            expectError(try await client.send(.get, "/v1/projects/fresh/files", as: alice), .notFound, .notFound)
        }
    }

    @Test func archiveRoundTrip() async throws {
        try await withAPI { fixture, client in
            let alice = fixture.alice
            try await withTemporaryDirectory(prefix: "api-archive-") { scratch in
                let source = scratch + "/source"
                try FileManager.default.createDirectory(atPath: source + "/src/lib", withIntermediateDirectories: true)
                try Data("# Demo\n".utf8).write(to: URL(fileURLWithPath: source + "/README.md"))
                try Data("def pay(): pass\n".utf8).write(to: URL(fileURLWithPath: source + "/src/pay.py"))
                try Data("X = 1\n".utf8).write(to: URL(fileURLWithPath: source + "/src/lib/util.py"))
                let archive = try runTar(["czf", "-", "-C", source, "README.md", "src"], in: scratch)

                #expect(try await client.send(.put, "/v1/projects/demo/files/old.txt", as: alice, bytes: [1]).status == .created)
                let upload = try await client.send(.put, "/v1/projects/demo/archive", as: alice, bytes: archive, contentType: "application/gzip")
                #expect(upload.status == .ok, "\(upload)")
                #expect(upload.json?["project"] == .string("demo"))
                #expect(upload.json?["files"]?.intValue == 3)
                #expect(upload.json?["directories"]?.intValue == 2)
                #expect(upload.json?["bytes"]?.intValue == 7 + 16 + 6)

                // The archive replaced the project.
                let listed = try await client.send(.get, "/v1/projects/demo/files", as: alice)
                #expect(listed.json?["files"]?.arrayValue?.compactMap { $0["path"]?.stringValue } == ["README.md", "src/lib/util.py", "src/pay.py"])
                #expect(try await client.send(.get, "/v1/projects/demo/files/src/pay.py", as: alice).bytes == Array("def pay(): pass\n".utf8))

                let download = try await client.send(.get, "/v1/projects/demo/archive", as: alice)
                #expect(download.status == .ok)
                #expect(download.headers[.contentType] == "application/gzip")
                #expect(download.headers[.contentDisposition] == #"attachment; filename="demo.tar.gz""#)
                #expect(download.bytes.starts(with: [0x1F, 0x8B]))
                try Data(download.bytes).write(to: URL(fileURLWithPath: scratch + "/down.tar.gz"))
                let names = String(decoding: try runTar(["tzf", "down.tar.gz"], in: scratch), as: UTF8.self)
                    .split(separator: "\n").map { $0.hasSuffix("/") ? String($0.dropLast()) : String($0) }
                #expect(Set(names) == ["README.md", "src", "src/lib", "src/lib/util.py", "src/pay.py"])
                try FileManager.default.createDirectory(atPath: scratch + "/out", withIntermediateDirectories: true)
                try runTar(["xzf", "../down.tar.gz"], in: scratch + "/out")
                #expect(try String(contentsOfFile: scratch + "/out/src/lib/util.py", encoding: .utf8) == "X = 1\n")

                // Uploading the downloaded archive elsewhere reproduces the project.
                let copy = try await client.send(.put, "/v1/projects/copy/archive", as: alice, bytes: download.bytes)
                #expect(copy.status == .ok, "\(copy)")
                #expect(copy.json?["files"]?.intValue == 3)
                let projects = try await client.send(.get, "/v1/projects", as: alice)
                #expect(projects.json?["projects"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["copy", "demo"])
            }
        }
    }

    // MARK: - Probes

    @Test func probesAnswerWithoutAuthentication() async throws {
        try await withAPI { fixture, client in
            let health = try await client.send(.get, "/healthz")
            #expect(health.status == .ok)
            #expect(health.json == .object(["status": .string("ok")]))
            let ready = try await client.send(.get, "/readyz")
            #expect(ready.status == .ok)
            #expect(ready.json == .object(["status": .string("ready")]))

            _ = try await client.submitJob(as: fixture.alice)
            let metrics = try await client.send(.get, "/metrics")
            #expect(metrics.status == .ok)
            #expect(metrics.headers[.contentType]?.hasPrefix("text/plain") == true)
            let lines = metrics.text.split(separator: "\n").map(String.init)
            #expect(lines.contains("# TYPE jobserver_jobs gauge"))
            #expect(lines.contains(#"jobserver_jobs{status="queued"} 1"#))
            #expect(lines.contains(#"jobserver_jobs{status="running"} 0"#))
            #expect(lines.contains { $0.hasPrefix("jobserver_oldest_queued_seconds ") })
            // Every sample line is "name{labels} number".
            for line in lines where !line.hasPrefix("#") {
                let value = line.split(separator: " ").last.map(String.init) ?? ""
                #expect(Double(value) != nil, "bad sample line: \(line)")
            }
            // A token is not required but does no harm.
            #expect(try await client.send(.get, "/healthz", as: fixture.alice).status == .ok)
        }
    }

    // MARK: - Regressions found by review

    @Test func fileListingTimestampsAreRFC3339() async throws {
        try await withAPI { fixture, client in
            #expect(try await client.send(.put, "/v1/projects/app/files/a.txt", as: fixture.alice, bytes: [1]).status == .created)
            let listed = try await client.send(.get, "/v1/projects/app/files", as: fixture.alice)
            let modified = try #require(listed.json?["files"]?.arrayValue?.first?["modified_at"])
            let text = try #require(modified.stringValue, "modified_at is \(modified.jsonText())")
            #expect((try? Date.ISO8601FormatStyle(includingFractionalSeconds: true).parse(text)) != nil)
        }
    }

    @Test func undecodablePercentEscapesInFilePathsAreRefused() async throws {
        try await withAPI { fixture, client in
            for path in ["%", "a%FFb", "%zz"] {
                let response = try await client.send(.put, "/v1/projects/app/files/\(path)", as: fixture.alice, bytes: [1])
                #expect(response.status.code < 500, "\(response)")
                expectError(response, .badRequest, .fileAccess)
            }
        }
    }

    @Test func contentTypeMustBeExactlyJSON() async throws {
        try await withAPI { fixture, client in
            let body = RejectedSubmission.generate("")
            let response = try await client.send(.post, "/v1/jobs", as: fixture.alice, json: body, contentType: "application/jsonp")
            #expect(response.status.code < 500, "\(response)")
            expectError(response, .unsupportedMediaType, .invalidRequest)
        }
    }
}
