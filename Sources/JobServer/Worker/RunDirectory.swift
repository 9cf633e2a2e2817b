#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import Queue

/// A job attempt's private scratch area under `data/runs/`:
/// `base/` (the snapshot the job started from), `work/` (the agent's copy, which becomes the
/// change set), `home/` (the agent's `$HOME`) and `scratch/` (the launcher's files).
struct RunDirectory: Sendable {
    let root: String
    let jobID: JobID
    let attempt: Int

    init(root: String, jobID: JobID, attempt: Int) {
        self.root = root
        self.jobID = jobID
        self.attempt = attempt
    }

    var path: String { Self.path(root: root, jobID: jobID, attempt: attempt) }
    var base: String { path + "/base" }
    var work: String { path + "/work" }
    var home: String { path + "/home" }
    var scratch: String { path + "/scratch" }

    static func path(root: String, jobID: JobID, attempt: Int) -> String {
        "\(root)/\(jobID.rawValue)-\(attempt)"
    }

    /// Creates the directories (mode 0700), first removing what earlier attempts of the same
    /// job left behind (a worker killed mid-job cannot clean up after itself).
    func create() throws {
        for earlier in 1..<max(1, attempt) {
            Self.removeIfPresent(Self.path(root: root, jobID: jobID, attempt: earlier))
        }
        remove()
        for directory in [path, home, scratch] where mkdir(directory, 0o700) != 0 {
            throw JobError(.internal, "cannot create \(directory): \(String(cString: strerror(errno)))")
        }
    }

    func remove() {
        Self.removeIfPresent(path)
    }

    /// Removes a directory tree if it exists. Usually nothing is there (this runs on every job
    /// start), and a plain existence check is much cheaper than a failed `removeItem`.
    private static func removeIfPresent(_ path: String) {
        guard access(path, F_OK) == 0 else { return }
        try? FileManager.default.removeItem(atPath: path)
    }
}
