import Foundation
import Queue
import Testing
@testable import JobServer

@Suite("Workspace store")
struct WorkspaceStoreTests {
    @Test("put, read, overwrite, list, delete")
    func crud() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let project = try WS.project()
        #expect(try store.listProjects(user: WS.user).isEmpty)
        #expect(try !store.projectExists(user: WS.user, project: project))

        #expect(try store.putFile(user: WS.user, project: project, path: WS.path("src/app.py"), bytes: WS.bytes("print(1)\n")))
        #expect(try store.putFile(user: WS.user, project: project, path: WS.path("README"), bytes: []))
        #expect(try !store.putFile(user: WS.user, project: project, path: WS.path("src/app.py"), bytes: WS.bytes("print(2)\n")))
        #expect(try store.readFile(user: WS.user, project: project, path: WS.path("src/app.py")) == WS.bytes("print(2)\n"))
        #expect(try store.fileExists(user: WS.user, project: project, path: WS.path("README")))
        #expect(try !store.fileExists(user: WS.user, project: project, path: WS.path("nope")))

        let files = try store.listFiles(user: WS.user, project: project)
        #expect(files.map(\.path) == ["README", "src/app.py"])
        #expect(files.map(\.bytes) == [0, 9])
        #expect(try store.listProjects(user: WS.user) == [project])
        #expect(try store.projectExists(user: WS.user, project: project))

        try store.deleteFile(user: WS.user, project: project, path: WS.path("README"))
        #expect(try store.listFiles(user: WS.user, project: project).map(\.path) == ["src/app.py"])
        WS.expectError(.notFound) { try store.deleteFile(user: WS.user, project: project, path: WS.path("README")) }
        WS.expectError(.notFound) { _ = try store.readFile(user: WS.user, project: project, path: WS.path("README")) }
        WS.expectError(.notFound) { _ = try store.readFile(user: WS.user, project: WS.project("other"), path: WS.path("a")) }
        WS.expectError(.notFound) { _ = try store.listFiles(user: WS.user, project: WS.project("other")) }
        // A directory is not a file, and a file is not a directory.
        WS.expectError(.fileAccess) { _ = try store.readFile(user: WS.user, project: project, path: WS.path("src")) }
        WS.expectError(.fileAccess) { try store.putFile(user: WS.user, project: project, path: WS.path("src"), bytes: []) }
        WS.expectError(.fileAccess) { try store.putFile(user: WS.user, project: project, path: WS.path("src/app.py/x"), bytes: []) }
        // Nothing is left in the temporary area.
        #expect(try FileManager.default.contentsOfDirectory(atPath: temp.sub("workspaces/usr_test/.tmp")).isEmpty)
    }

    @Test("file size and project quotas")
    func limits() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"),
                                   limits: WorkspaceLimits(maxFileBytes: 10, maxFilesPerProject: 2, maxProjectBytes: 15))
        let project = try WS.project()
        let big = WS.expectError(.fileAccess) {
            try store.putFile(user: WS.user, project: project, path: WS.path("big"), bytes: [UInt8](repeating: 1, count: 11))
        }
        #expect(big?.details?["limit"]?.intValue == 10)
        try store.putFile(user: WS.user, project: project, path: WS.path("a"), bytes: [UInt8](repeating: 1, count: 10))
        WS.expectError(.resourceLimit) {
            try store.putFile(user: WS.user, project: project, path: WS.path("b"), bytes: [UInt8](repeating: 1, count: 6))
        }
        try store.putFile(user: WS.user, project: project, path: WS.path("b"), bytes: [UInt8](repeating: 1, count: 5))
        WS.expectError(.resourceLimit) { try store.putFile(user: WS.user, project: project, path: WS.path("c"), bytes: []) }
        // Replacing a file counts its old size out.
        try store.putFile(user: WS.user, project: project, path: WS.path("a"), bytes: [UInt8](repeating: 2, count: 10))
    }

    @Test("a symlink inside the workspace is never followed")
    func symlinks() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let project = try WS.project()
        try store.putFile(user: WS.user, project: project, path: WS.path("ok.txt"), bytes: WS.bytes("ok"))
        let outside = temp.sub("outside")
        try WS.write(outside + "/secret.txt", "secret")
        let projectDir = try store.projectPath(user: WS.user, project: project)
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: projectDir + "/link.txt", withDestinationPath: outside + "/secret.txt")
        try fm.createSymbolicLink(atPath: projectDir + "/dir", withDestinationPath: outside)

        // Reading through a link (the file itself or a parent component) is refused.
        let direct = WS.expectError(.fileAccess) { _ = try store.readFile(user: WS.user, project: project, path: WS.path("link.txt")) }
        #expect(direct?.message.contains("symbolic link") == true)
        let parent = WS.expectError(.fileAccess) { _ = try store.readFile(user: WS.user, project: project, path: WS.path("dir/secret.txt")) }
        #expect(parent?.message.contains("symbolic link") == true)
        #expect(parent?.message.contains("'dir'") == true)
        WS.expectError(.fileAccess) { _ = try store.fileExists(user: WS.user, project: project, path: WS.path("dir/secret.txt")) }

        // Writing through a link is refused and the outside file is untouched.
        WS.expectError(.fileAccess) { try store.putFile(user: WS.user, project: project, path: WS.path("link.txt"), bytes: WS.bytes("pwned")) }
        WS.expectError(.fileAccess) { try store.putFile(user: WS.user, project: project, path: WS.path("dir/secret.txt"), bytes: WS.bytes("pwned")) }
        WS.expectError(.fileAccess) { try store.putFile(user: WS.user, project: project, path: WS.path("dir/new.txt"), bytes: WS.bytes("pwned")) }
        WS.expectError(.fileAccess) { try store.deleteFile(user: WS.user, project: project, path: WS.path("link.txt")) }
        WS.expectError(.fileAccess) { try store.deleteFile(user: WS.user, project: project, path: WS.path("dir/secret.txt")) }
        #expect(try WS.read(outside + "/secret.txt") == "secret")
        #expect(!fm.fileExists(atPath: outside + "/new.txt"))

        // Listings and archives leave links out; snapshots do not copy them.
        #expect(try store.listFiles(user: WS.user, project: project).map(\.path) == ["ok.txt"])
        let entries = try WS.readTar(Gzip.decompress(store.archive(user: WS.user, project: project), limit: 1 << 20))
        #expect(entries.map(\.path.rawValue) == ["ok.txt"])
        let summary = try store.snapshot(user: WS.user, project: project, to: temp.sub("snap"))
        #expect(summary.files == 1)
        #expect(summary.skipped.sorted() == ["dir", "link.txt"])
        #expect(try fm.contentsOfDirectory(atPath: temp.sub("snap")) == ["ok.txt"])
    }

    @Test("the project directory itself being a symlink is refused")
    func projectSymlink() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        try store.putFile(user: WS.user, project: WS.project("real"), path: WS.path("a"), bytes: WS.bytes("a"))
        let outside = temp.sub("outside")
        try WS.write(outside + "/a", "outside")
        try FileManager.default.createSymbolicLink(atPath: temp.sub("workspaces/usr_test/evil"), withDestinationPath: outside)
        WS.expectError(.fileAccess) { _ = try store.readFile(user: WS.user, project: WS.project("evil"), path: WS.path("a")) }
        WS.expectError(.fileAccess) { try store.putFile(user: WS.user, project: WS.project("evil"), path: WS.path("a"), bytes: []) }
        #expect(try WS.read(outside + "/a") == "outside")
        #expect(try store.listProjects(user: WS.user).map(\.rawValue) == ["real"])
    }

    @Test("snapshot copies files, directories and mode bits; missing project gives an empty copy")
    func snapshot() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let project = try WS.project()
        try store.putFile(user: WS.user, project: project, path: WS.path("bin/run.sh"), bytes: WS.bytes("#!/bin/sh\n"))
        let projectDir = try store.projectPath(user: WS.user, project: project)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: projectDir + "/bin/run.sh")
        try store.snapshot(user: WS.user, project: project, to: temp.sub("base"))
        try WorkspaceSnapshot.copy(from: temp.sub("base"), to: temp.sub("work"))
        let attributes = try FileManager.default.attributesOfItem(atPath: temp.sub("work/bin/run.sh"))
        #expect((attributes[.posixPermissions] as? Int) == 0o755)
        #expect(try WS.read(temp.sub("work/bin/run.sh")) == "#!/bin/sh\n")
        WS.expectError(.conflict) { try WorkspaceSnapshot.copy(from: temp.sub("base"), to: temp.sub("work")) }
        try store.snapshot(user: WS.user, project: WS.project("fresh"), to: temp.sub("empty"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: temp.sub("empty")).isEmpty)
    }

    @Test("concurrent writers to one project are serialized")
    func concurrentWriters() async throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let project = try WS.project()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<16 {
                group.addTask {
                    try store.putFile(user: WS.user, project: project, path: WS.path("f\(index % 4)"), bytes: WS.bytes("\(index)"))
                }
            }
            try await group.waitForAll()
        }
        #expect(try store.listFiles(user: WS.user, project: project).count == 4)
    }
}
