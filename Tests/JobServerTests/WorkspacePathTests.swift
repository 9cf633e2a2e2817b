import Queue
import Testing
@testable import JobServer

@Suite("Workspace paths")
struct WorkspacePathTests {
    @Test("valid project names", arguments: ["a", "billing-api", "A.b_c-9", "0", String(repeating: "x", count: 64)])
    func goodProjectNames(_ name: String) throws {
        #expect(try ProjectName(validating: name).rawValue == name)
    }

    @Test("invalid project names are E003", arguments: [
        ("", "empty"), (".", "start"), ("..", "start"), (".hidden", "start"), ("-x", "start"), ("a/b", "only"),
        ("a b", "only"), ("é", "start"), (String(repeating: "x", count: 65), "64"), ("a@b", "only"),
    ])
    func badProjectNames(_ name: String, _ fragment: String) {
        let error = WS.expectError(.invalidRequest) { _ = try ProjectName(validating: name) }
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")")
        #expect(ProjectName(rawValue: name) == nil)
    }

    @Test("valid relative paths", arguments: ["a", "src/app.py", ".git/config", "a b/c d.txt", "..a/b..", "ünïcode/ß",
                                               String(repeating: "x", count: 255)])
    func goodPaths(_ path: String) throws {
        #expect(try RelativePath(validating: path).rawValue == path)
    }

    @Test("invalid relative paths are E004", arguments: [
        ("", "empty"), ("/etc/passwd", "absolute"), ("../x", "'..'"), ("a/../b", "'..'"), ("a/..", "'..'"),
        ("./a", "'.'"), ("a/./b", "'.'"), ("a//b", "empty component"), ("a/", "empty component"),
        ("a\u{0}b", "NUL"), ("a\nb", "control"), ("a\u{7F}", "control"), ("a\\b", "backslash"),
        (String(repeating: "x", count: 256), "255"), (String(repeating: "abcdefg/", count: 600), "4096"),
    ])
    func badPaths(_ path: String, _ fragment: String) {
        let error = WS.expectError(.fileAccess) { _ = try RelativePath(validating: path) }
        #expect(error?.message.contains(fragment) == true, "\(error?.message ?? "")")
        #expect(RelativePath(rawValue: path) == nil)
    }

    @Test("path helpers")
    func helpers() throws {
        let path = try RelativePath(validating: "a/b/c.txt")
        #expect(path.components == ["a", "b", "c.txt"])
        #expect(path.lastComponent == "c.txt")
        #expect(path.parent?.rawValue == "a/b")
        #expect(try RelativePath(validating: "top").parent == nil)
    }
}
