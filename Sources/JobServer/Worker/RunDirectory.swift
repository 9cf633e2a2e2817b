import Foundation
import Queue

/// A job attempt's private scratch area under `data/runs/`:
/// `base/` (the snapshot the job started from), `work/` (the agent's copy, which becomes the
/// change set), `home/` (the agent's `$HOME`) and `scratch/` (the launcher's files).
struct RunDirectory: Sendable {
    let path: String

    init(root: String, jobID: JobID, attempt: Int) {
        path = "\(root)/\(jobID.rawValue)-\(attempt)"
    }

    var base: String { path + "/base" }
    var work: String { path + "/work" }
    var home: String { path + "/home" }
    var scratch: String { path + "/scratch" }

    /// Creates the directories, first removing what earlier attempts of the same job left
    /// behind (a worker killed mid-job cannot clean up after itself).
    func create() throws {
        let parent = (path as NSString).deletingLastPathComponent
        let prefix = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
        let jobPrefix = String(prefix[..<(prefix.lastIndex(of: "-") ?? prefix.endIndex)]) + "-"
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? [] where entry.hasPrefix(jobPrefix) {
            try? FileManager.default.removeItem(atPath: parent + "/" + entry)
        }
        for directory in [path, home, scratch] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        }
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}
