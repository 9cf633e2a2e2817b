import Foundation
import Queue
import Testing
@testable import JobServer

@Suite("Workspace change sets and applier")
struct WorkspaceChangeTests {
    /// A project with a few files, snapshotted into `base` and `work` like a job does.
    struct Fixture {
        let temp: WorkspaceTempDirectory
        let store: WorkspaceStore
        let project: ProjectName
        var base: String { temp.sub("run/base") }
        var work: String { temp.sub("run/work") }

        init(limits: WorkspaceLimits = WorkspaceLimits()) throws {
            temp = try WorkspaceTempDirectory()
            store = WorkspaceStore(root: temp.sub("workspaces"), limits: limits)
            project = try WS.project()
            try store.putFile(user: WS.user, project: project, path: WS.path("keep.txt"), bytes: WS.bytes("same\n"))
            try store.putFile(user: WS.user, project: project, path: WS.path("src/app.py"),
                              bytes: WS.bytes((1...20).map { "line \($0)" }.joined(separator: "\n") + "\n"))
            try store.putFile(user: WS.user, project: project, path: WS.path("old.txt"), bytes: WS.bytes("remove me\n"))
            try store.putFile(user: WS.user, project: project, path: WS.path("data.bin"), bytes: [0, 1, 2, 0, 255])
            try FileManager.default.createDirectory(atPath: temp.sub("run"), withIntermediateDirectories: true)
            try store.snapshot(user: WS.user, project: project, to: base)
            try WorkspaceSnapshot.copy(from: base, to: work)
        }

        /// What an agent might do in `work`.
        func edit() throws {
            var lines = (1...20).map { "line \($0)" }
            lines[9] = "line ten, changed"
            try WS.write(work + "/src/app.py", lines.joined(separator: "\n") + "\n")
            try FileManager.default.removeItem(atPath: work + "/old.txt")
            try WS.write(work + "/new dir/new file.txt", "brand new\n")
            try Data([0, 1, 2, 3, 0, 254]).write(to: URL(fileURLWithPath: work + "/data.bin"))
            try FileManager.default.createSymbolicLink(atPath: work + "/escape", withDestinationPath: "/etc/passwd")
        }

        func live(_ path: String) throws -> [UInt8] {
            try store.readFile(user: WS.user, project: project, path: WS.path(path))
        }

        func paths() throws -> [String] { try store.listFiles(user: WS.user, project: project).map(\.path) }
    }

    @Test("created, modified and deleted files with a patch git can apply")
    func changeSet() throws {
        let fixture = try Fixture()
        try fixture.edit()
        let changes = try ChangeSet.compute(base: fixture.base, work: fixture.work)
        #expect(changes.files.map(\.path) == ["data.bin", "new dir/new file.txt", "old.txt", "src/app.py"])
        #expect(changes.files.map(\.action) == [.modified, .created, .deleted, .modified])
        #expect(changes.files.map(\.bytes) == [6, 10, 0, 161])
        #expect(changes.skipped == [SkippedPath(path: "escape", reason: "symbolic link (links are never followed or applied)")])
        let app = try #require(changes.files.last)
        #expect(app.diff.hasPrefix("diff --git a/src/app.py b/src/app.py\n"))
        #expect(app.diff.contains("--- a/src/app.py\n+++ b/src/app.py\n@@ -7,7 +7,7 @@"))
        #expect(app.diff.contains("-line 10\n+line ten, changed\n"))
        #expect(!changes.patch.contains(fixture.temp.path))
        #expect(changes.files[2].diff.contains("+++ /dev/null"))

        // git apply reproduces work from a copy of base.
        let target = fixture.temp.sub("replay")
        try WorkspaceSnapshot.copy(from: fixture.base, to: target)
        try Data(changes.patch.utf8).write(to: URL(fileURLWithPath: fixture.temp.sub("change.patch")))
        #expect(try WS.run(["git", "apply", "--whitespace=nowarn", fixture.temp.sub("change.patch")], in: target) == 0)
        let again = try ChangeSet.compute(base: target, work: fixture.work)
        #expect(again.files.isEmpty, "\(again.files.map(\.path))")

        // JSON uses the DESIGN's keys.
        let json = try #require(String(data: try JSONEncoder().encode(changes.files[0]), encoding: .utf8))
        #expect(json.contains("\"action\":\"modified\""))
        #expect(json.contains("\"bytes\":6"))
        #expect(try ChangeSet.compute(base: fixture.base, work: fixture.base).isEmpty)
    }

    @Test("a symlink replacing a file is skipped, not a deletion")
    func symlinkReplacingFile() throws {
        let fixture = try Fixture()
        try FileManager.default.removeItem(atPath: fixture.work + "/keep.txt")
        try FileManager.default.createSymbolicLink(atPath: fixture.work + "/keep.txt", withDestinationPath: "/etc/passwd")
        let changes = try ChangeSet.compute(base: fixture.base, work: fixture.work)
        #expect(changes.files.isEmpty)
        #expect(changes.skipped.map(\.path) == ["keep.txt"])
    }

    @Test("clean apply")
    func cleanApply() throws {
        let fixture = try Fixture()
        try fixture.edit()
        let changes = try ChangeSet.compute(base: fixture.base, work: fixture.work)
        try fixture.store.apply(changes, user: WS.user, project: fixture.project, base: fixture.base, work: fixture.work)
        #expect(try fixture.paths() == ["data.bin", "keep.txt", "new dir/new file.txt", "src/app.py"])
        #expect(try fixture.live("new dir/new file.txt") == WS.bytes("brand new\n"))
        #expect(try fixture.live("data.bin") == [0, 1, 2, 3, 0, 254])
        #expect(try String(decoding: fixture.live("src/app.py"), as: UTF8.self).contains("line ten, changed"))
        let userDir = fixture.temp.sub("workspaces/usr_test")
        #expect(!FileManager.default.fileExists(atPath: userDir + "/.journal/demo.json"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: userDir + "/.tmp").isEmpty)
    }

    @Test("a file can replace a directory and a directory a file")
    func typeChanges() throws {
        let fixture = try Fixture()
        try FileManager.default.removeItem(atPath: fixture.work + "/src")
        try WS.write(fixture.work + "/src", "now a file\n")
        try FileManager.default.removeItem(atPath: fixture.work + "/keep.txt")
        try WS.write(fixture.work + "/keep.txt/inner.txt", "now a dir\n")
        let changes = try ChangeSet.compute(base: fixture.base, work: fixture.work)
        try fixture.store.apply(changes, user: WS.user, project: fixture.project, base: fixture.base, work: fixture.work)
        #expect(try fixture.live("src") == WS.bytes("now a file\n"))
        #expect(try fixture.live("keep.txt/inner.txt") == WS.bytes("now a dir\n"))
    }

    @Test("conflict: the live file changed meanwhile → E014 and nothing applied")
    func conflict() throws {
        let fixture = try Fixture()
        try fixture.edit()
        let changes = try ChangeSet.compute(base: fixture.base, work: fixture.work)
        try fixture.store.putFile(user: WS.user, project: fixture.project, path: WS.path("src/app.py"), bytes: WS.bytes("someone else\n"))
        try fixture.store.putFile(user: WS.user, project: fixture.project, path: WS.path("new dir/new file.txt"), bytes: WS.bytes("race\n"))
        let error = WS.expectError(.conflict) {
            try fixture.store.apply(changes, user: WS.user, project: fixture.project, base: fixture.base, work: fixture.work)
        }
        #expect(error?.details?["paths"] == .array([.string("new dir/new file.txt"), .string("src/app.py")]))
        #expect(error?.message.contains("src/app.py") == true)
        #expect(try fixture.live("old.txt") == WS.bytes("remove me\n"))
        #expect(try fixture.live("data.bin") == [0, 1, 2, 0, 255])
        #expect(try fixture.live("src/app.py") == WS.bytes("someone else\n"))
    }

    @Test("journal replay after a crash: all or nothing", arguments: [0, 1, 3])
    func journalReplay(_ operationsDone: Int) throws {
        let fixture = try Fixture()
        try fixture.edit()
        let changes = try ChangeSet.compute(base: fixture.base, work: fixture.work)
        let applier = ChangeApplier(store: fixture.store)
        let crash: ChangeApplier.CrashPoint = operationsDone == 0 ? .afterJournal : .afterOperations(operationsDone)
        try applier.apply(changes, base: fixture.base, work: fixture.work, user: WS.user, project: fixture.project, crash: crash)
        let journal = fixture.temp.sub("workspaces/usr_test/.journal/demo.json")
        #expect(FileManager.default.fileExists(atPath: journal))
        // The work copy is gone after the crash: recovery needs only the journal and staging.
        try FileManager.default.removeItem(atPath: fixture.temp.sub("run"))
        try applier.recover(user: WS.user, project: fixture.project)
        #expect(!FileManager.default.fileExists(atPath: journal))
        #expect(try fixture.paths() == ["data.bin", "keep.txt", "new dir/new file.txt", "src/app.py"])
        #expect(try fixture.live("data.bin") == [0, 1, 2, 3, 0, 254])
        #expect(try FileManager.default.contentsOfDirectory(atPath: fixture.temp.sub("workspaces/usr_test/.tmp")).isEmpty)
    }

    @Test("a crash before the journal leaves nothing applied")
    func crashBeforeJournal() throws {
        let fixture = try Fixture()
        // A staging directory left by a crash while copying, with no journal.
        let staging = fixture.temp.sub("workspaces/usr_test/.tmp/demo@apply-crashed")
        try WS.write(staging + "/0", "half written")
        try ChangeApplier(store: fixture.store).recover(user: WS.user, project: fixture.project)
        #expect(!FileManager.default.fileExists(atPath: staging))
        #expect(try fixture.paths() == ["data.bin", "keep.txt", "old.txt", "src/app.py"])
    }

    @Test("quota exceeded on apply → E008, nothing applied")
    func quota() throws {
        let fixture = try Fixture(limits: WorkspaceLimits(maxProjectBytes: 200))
        try fixture.edit()
        try WS.write(fixture.work + "/big.txt", String(repeating: "x", count: 150))
        let changes = try ChangeSet.compute(base: fixture.base, work: fixture.work)
        WS.expectError(.resourceLimit) {
            try fixture.store.apply(changes, user: WS.user, project: fixture.project, base: fixture.base, work: fixture.work)
        }
        #expect(try fixture.paths() == ["data.bin", "keep.txt", "old.txt", "src/app.py"])
    }
}
