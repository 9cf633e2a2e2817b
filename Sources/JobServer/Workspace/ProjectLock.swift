#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Queue

/// Where one user's workspace lives and how its bookkeeping directories are named.
///
/// `<root>/<user>/<project>/` is the project; `<root>/<user>/.locks/<project>.lock` its lock
/// file, `<root>/<user>/.journal/<project>.json` a pending apply, and `<root>/<user>/.tmp/`
/// holds temporary files and staging directories named `<project>@<purpose>-<random>` (`@`
/// cannot occur in a project name, so one project's leftovers are never mistaken for
/// another's). Everything lives on one file system, so `rename` between them is atomic.
enum WorkspaceLayout {
    static let locks = ".locks"
    static let journal = ".journal"
    static let tmp = ".tmp"

    static func tempName(_ project: ProjectName, _ purpose: String) -> String {
        var generator = SystemRandomNumberGenerator()
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        let random = String((0..<12).map { _ in alphabet[Int(generator.next(upperBound: UInt32(alphabet.count)))] })
        return "\(project.rawValue)@\(purpose)-\(random)"
    }

    static func isTempName(_ name: String, of project: ProjectName) -> Bool {
        name.hasPrefix(project.rawValue + "@")
    }
}

/// A project while its exclusive lock is held: the open user directory and the project's name.
///
/// Only code running inside `WorkspaceStore.withLockedProject` gets one, which is how the
/// writers (file API, archive upload, change applier) serialize per project.
struct LockedProject {
    let store: WorkspaceStore
    let user: UserID
    let project: ProjectName
    /// `<root>/<user>/`, opened without following symlinks.
    let userDirectory: Descriptor

    /// The project directory, or `nil` when the project does not exist.
    func openProject(create: Bool) throws(JobError) -> Descriptor? {
        do {
            if create { return try userDirectory.openOrMakeDirectory(project.rawValue) }
            return try userDirectory.openDirectory(project.rawValue)
        } catch {
            if error.code == ENOENT { return nil }
            throw WorkspaceErrors.map(error, path: project.rawValue)
        }
    }

    /// `<root>/<user>/.tmp/`, created on demand.
    func tmpDirectory() throws(JobError) -> Descriptor {
        try WorkspaceErrors.mapping { try userDirectory.openOrMakeDirectory(WorkspaceLayout.tmp) }
    }

    /// Removes this project's leftover temporary files and staging directories (from a crash);
    /// only safe while holding the lock, after journal replay.
    func removeLeftovers() throws(JobError) {
        let tmp = try tmpDirectory()
        try WorkspaceErrors.mapping {
            for raw in try tmp.rawEntryNames() {
                if let name = String(validating: raw, as: UTF8.self), WorkspaceLayout.isTempName(name, of: project) {
                    try tmp.removeTree(rawName: raw)
                }
            }
        }
    }
}
