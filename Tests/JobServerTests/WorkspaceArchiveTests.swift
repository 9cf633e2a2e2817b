import Foundation
import NIOCore
import Queue
import Testing
@testable import JobServer

@Suite("Workspace archives")
struct WorkspaceArchiveTests {
    @Test("TarWriter output reads back, including long paths (ustar prefix and pax)")
    func roundTrip() throws {
        let longDirectory = String(repeating: "d", count: 120)
        let splitPath = longDirectory + "/" + String(repeating: "f", count: 90)
        let paxPath = (0..<5).map { _ in String(repeating: "p", count: 200) }.joined(separator: "/")
        var writer = TarWriter()
        try writer.addDirectory("src", permissions: 0o755)
        try writer.addFile("src/app.py", bytes: WS.bytes("print(1)\n"), permissions: 0o755)
        try writer.addFile("empty", bytes: [])
        try writer.addFile(splitPath, bytes: WS.bytes("split"))
        try writer.addFile(paxPath, bytes: WS.bytes("pax"))
        let entries = try WS.readTar(writer.finish())
        #expect(entries.map(\.path.rawValue) == ["src", "src/app.py", "empty", splitPath, paxPath])
        #expect(entries[0].kind == .directory)
        #expect(entries[1].bytes == WS.bytes("print(1)\n"))
        #expect(entries[1].permissions == 0o755)
        #expect(entries[3].bytes == WS.bytes("split"))
        #expect(entries[4].bytes == WS.bytes("pax"))

        // GNU tar reads it too.
        let temp = try WorkspaceTempDirectory()
        try Data(writer.finish()).write(to: URL(fileURLWithPath: temp.sub("a.tar")))
        try FileManager.default.createDirectory(atPath: temp.sub("x"), withIntermediateDirectories: true)
        #expect(try WS.run(["tar", "-xf", temp.sub("a.tar"), "-C", temp.sub("x")], in: temp.path) == 0)
        #expect(try WS.read(temp.sub("x/" + paxPath)) == "pax")
    }

    @Test("store archive → replaceWithArchive round trip, and archives made by GNU tar")
    func storeRoundTrip() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let source = try WS.project("source")
        try store.putFile(user: WS.user, project: source, path: WS.path("src/app.py"), bytes: WS.bytes("print(1)\n"))
        try store.putFile(user: WS.user, project: source, path: WS.path("docs/readme.md"), bytes: WS.bytes("# hi\n"))
        let archive = try store.archive(user: WS.user, project: source)

        let copy = try WS.project("copy")
        try store.putFile(user: WS.user, project: copy, path: WS.path("old.txt"), bytes: WS.bytes("old"))
        let summary = try store.replaceWithArchive(user: WS.user, project: copy, archive: archive)
        #expect(summary.files == 2)
        #expect(try store.listFiles(user: WS.user, project: copy).map(\.path) == ["docs/readme.md", "src/app.py"])
        #expect(try store.readFile(user: WS.user, project: copy, path: WS.path("src/app.py")) == WS.bytes("print(1)\n"))

        // An archive made by GNU tar (with "./" prefixes and directory entries).
        try WS.write(temp.sub("tree/a/b.txt"), "b")
        try WS.write(temp.sub("tree/c.txt"), "c")
        #expect(try WS.run(["tar", "-czf", temp.sub("t.tgz"), "-C", temp.sub("tree"), "."], in: temp.path) == 0)
        let gnu = ByteBuffer(bytes: try Data(contentsOf: URL(fileURLWithPath: temp.sub("t.tgz"))))
        try store.replaceWithArchive(user: WS.user, project: copy, archive: gnu)
        #expect(try store.listFiles(user: WS.user, project: copy).map(\.path) == ["a/b.txt", "c.txt"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: temp.sub("workspaces/usr_test/.tmp")).isEmpty)
    }

    static let longName = String(repeating: "n", count: 150)

    /// Hostile archives and the message fragment each must be refused with.
    static let hostile: [(String, [UInt8], String)] = {
        var cases: [(String, [UInt8], String)] = []
        cases.append(("absolute", WS.entry("/etc/passwd", "x") + WS.end, "absolute path"))
        cases.append(("dotdot", WS.entry("a/../../x", "x") + WS.end, "'..'"))
        cases.append(("symlink", WS.header("link", type: "2", linkName: "/etc/passwd") + WS.end, "symbolic link"))
        cases.append(("hardlink", WS.header("hard", type: "1", linkName: "etc/passwd") + WS.end, "hard link"))
        cases.append(("chardev", WS.header("dev", type: "3") + WS.end, "character device"))
        cases.append(("blockdev", WS.header("dev", type: "4") + WS.end, "block device"))
        cases.append(("fifo", WS.header("fifo", type: "6") + WS.end, "FIFO"))
        cases.append(("duplicate", WS.entry("a.txt", "1") + WS.entry("a.txt", "2") + WS.end, "more than once"))
        cases.append(("file-as-dir", WS.entry("a", "1") + WS.entry("a/b", "2") + WS.end, "which is a file"))
        let gnuLong = Array(("evil/../../" + longName).utf8) + [0]
        cases.append(("gnu-long-name", WS.header("././@LongLink", type: "L", size: gnuLong.count, gnuMagic: true)
            + WS.padded(gnuLong) + WS.entry("short", "x") + WS.end, "'..'"))
        let pax = TarWriter.paxRecord(key: "path", value: Array("/abs/\(longName)".utf8))
        cases.append(("pax-path", WS.header("PaxHeaders/x", type: "x", size: pax.count) + WS.padded(pax)
            + WS.entry("short", "x") + WS.end, "absolute path"))
        let paxSize = TarWriter.paxRecord(key: "size", value: Array("99999999999".utf8))
        cases.append(("pax-size", WS.header("PaxHeaders/x", type: "x", size: paxSize.count) + WS.padded(paxSize)
            + WS.entry("short", "x") + WS.end, "per-file limit"))
        cases.append(("huge-size", WS.header("huge", size: 0o77777777777) + WS.end, "per-file limit"))
        cases.append(("truncated-data", WS.header("t", size: 4000) + WS.padded(WS.bytes("short")), "truncated"))
        cases.append(("truncated-header", Array(WS.entry("a", "a").prefix(300)), "truncated"))
        cases.append(("no-end-marker", WS.entry("a", "a"), "end-of-archive"))
        var badChecksum = WS.entry("bad.txt", "x") + WS.end
        badChecksum[0] = UInt8(ascii: "B")
        cases.append(("bad-checksum", badChecksum, "checksum"))
        cases.append(("unknown-type", WS.header("s", type: "S") + WS.end, "unsupported type"))
        cases.append(("data-after-end", WS.entry("a", "a") + WS.end + WS.entry("b", "b"), "after its end-of-archive"))
        return cases
    }()

    @Test("hostile archives are refused with E004 and the project is unchanged", arguments: hostile.indices)
    func hostileArchive(_ index: Int) throws {
        let (name, tar, fragment) = Self.hostile[index]
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let project = try WS.project()
        try store.putFile(user: WS.user, project: project, path: WS.path("keep.txt"), bytes: WS.bytes("keep"))
        let error = WS.expectError(.fileAccess) {
            try store.replaceWithArchive(user: WS.user, project: project, archive: WS.gzip(tar))
        }
        #expect(error?.message.contains(fragment) == true, "\(name): \(error?.message ?? "no error")")
        #expect(try store.listFiles(user: WS.user, project: project).map(\.path) == ["keep.txt"], "\(name)")
        #expect(try store.readFile(user: WS.user, project: project, path: WS.path("keep.txt")) == WS.bytes("keep"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: temp.sub("workspaces/usr_test/.tmp")).isEmpty)
    }

    @Test("hostile entries are named in the message")
    func namesEntry() throws {
        let error = WS.expectError(.fileAccess) { _ = try WS.readTar(WS.header("innocent.txt", type: "2", linkName: "/") + WS.end) }
        #expect(error?.message.contains("'innocent.txt'") == true)
    }

    @Test("gzip bombs stop at the decompression limit")
    func gzipBomb() throws {
        let temp = try WorkspaceTempDirectory()
        // 200 MiB of zeros, as gzip members of 8 MiB each (cheap to build; one stream to the reader).
        var bomb = ByteBuffer()
        let member = try WS.gzip([UInt8](repeating: 0, count: 8 << 20))
        for _ in 0..<25 { bomb.writeImmutableBuffer(member) }
        #expect(bomb.readableBytes < 1 << 20)

        // Default limits: zeros read as an end marker followed by endless padding.
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let project = try WS.project()
        try store.putFile(user: WS.user, project: project, path: WS.path("keep.txt"), bytes: WS.bytes("keep"))
        let first = WS.expectError(.fileAccess) { try store.replaceWithArchive(user: WS.user, project: project, archive: bomb) }
        #expect(first?.message.contains("archive too large") == true, "\(first?.message ?? "")")

        // A file entry whose zeros inflate past the archive limit.
        let small = WorkspaceStore(root: temp.sub("workspaces"), limits: WorkspaceLimits(maxArchiveBytes: 4 << 20))
        let tarBomb = try WS.gzip(WS.header("zeros.bin", size: 15 << 20) + [UInt8](repeating: 0, count: 15 << 20) + WS.end)
        let second = WS.expectError(.fileAccess) { try small.replaceWithArchive(user: WS.user, project: project, archive: tarBomb) }
        #expect(second?.message.contains("archive too large") == true, "\(second?.message ?? "")")
        #expect(second?.details?["limit"]?.intValue == 4 << 20)
        #expect(try store.listFiles(user: WS.user, project: project).map(\.path) == ["keep.txt"])
    }

    @Test("archive quota: too many files or bytes is E008")
    func archiveQuota() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"), limits: WorkspaceLimits(maxFilesPerProject: 2, maxProjectBytes: 5))
        let project = try WS.project()
        WS.expectError(.resourceLimit) {
            try store.replaceWithArchive(user: WS.user, project: project,
                                         archive: WS.gzip(WS.entry("a", "1") + WS.entry("b", "2") + WS.entry("c", "3") + WS.end))
        }
        WS.expectError(.resourceLimit) {
            try store.replaceWithArchive(user: WS.user, project: project, archive: WS.gzip(WS.entry("a", "123456") + WS.end))
        }
        #expect(try !store.projectExists(user: WS.user, project: project))
    }

    @Test("non-gzip, corrupt and truncated gzip bodies are E004")
    func badGzip() throws {
        let temp = try WorkspaceTempDirectory()
        let store = WorkspaceStore(root: temp.sub("workspaces"))
        let project = try WS.project()
        let plain = WS.expectError(.fileAccess) {
            try store.replaceWithArchive(user: WS.user, project: project, archive: ByteBuffer(bytes: WS.entry("a", "a") + WS.end))
        }
        #expect(plain?.message.contains("not gzip") == true)
        let good = Array(try WS.gzip(WS.entry("a", String(repeating: "abc", count: 5000)) + WS.end).readableBytesView)
        let truncated = WS.expectError(.fileAccess) {
            try store.replaceWithArchive(user: WS.user, project: project, archive: ByteBuffer(bytes: good.prefix(good.count - 6)))
        }
        #expect(truncated?.message.contains("truncated") == true, "\(truncated?.message ?? "")")
        var corrupt = good
        corrupt[corrupt.count - 5] ^= 0xFF // CRC/length trailer
        let bad = WS.expectError(.fileAccess) { try store.replaceWithArchive(user: WS.user, project: project, archive: ByteBuffer(bytes: corrupt)) }
        #expect(bad?.message.contains("gzip") == true, "\(bad?.message ?? "")")
        let trailing = WS.expectError(.fileAccess) {
            try store.replaceWithArchive(user: WS.user, project: project, archive: ByteBuffer(bytes: good + WS.bytes("junk")))
        }
        #expect(trailing?.message.contains("trailing") == true, "\(trailing?.message ?? "")")
    }
}
