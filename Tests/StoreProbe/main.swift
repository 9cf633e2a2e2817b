// store-probe: drives a SQLite store from a separate process, for the multi-process tests.
//
//   store-probe claim <dbpath> <owner> <count-limit> <idle-ms>
//       Claims and completes (succeeded) jobs in a loop, printing each claimed job id on its
//       own line, until <count-limit> jobs (0 = no limit) or until no job was claimable for
//       <idle-ms>. Waits on the change feed between empty claims.
//   store-probe submit <dbpath> <user-id> <n>
//       Submits n jobs, printing each id.
//
// Exits 0 on success; prints "error: …" to stderr and exits 1 otherwise.
import Foundation
import Queue

/// Writes a line straight to stdout (unbuffered, so a killed probe has printed all it claimed).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    exit(1)
}

func claimLoop(path: String, owner: String, limit: Int, idle: Duration) async throws {
    let store = try SQLiteJobStore(path: path)
    let clock = ContinuousClock()
    var claimed = 0
    var idleSince = clock.now
    while limit == 0 || claimed < limit {
        let generation = store.changes.generation(of: .queue)
        if let job = try await store.claim(owner: owner, lease: .seconds(30)) {
            emit(job.id.rawValue)
            try await store.complete(job.id, owner: owner, with: .succeeded(result: .object(["by": .string(owner)]), metrics: nil))
            claimed += 1
            idleSince = clock.now
            continue
        }
        let remaining = idle - (clock.now - idleSince)
        if remaining <= .zero { break }
        await store.changes.wait(for: .queue, after: generation, timeout: remaining)
    }
}

func submitJobs(path: String, user: String, count: Int) async throws {
    let store = try SQLiteJobStore(path: path)
    for index in 0..<count {
        let outcome = try await store.submit(NewJob(
            userID: UserID(rawValue: user), kind: "probe", project: "probe",
            payload: .object(["index": .number(Double(index))])))
        emit(outcome.job.id.rawValue)
    }
}

let arguments = CommandLine.arguments
do {
    switch arguments.dropFirst().first {
    case "claim":
        guard arguments.count == 6, let limit = Int(arguments[4]), let idle = Int(arguments[5]), limit >= 0, idle >= 0 else {
            fail("usage: store-probe claim <dbpath> <owner> <count-limit> <idle-ms>")
        }
        try await claimLoop(path: arguments[2], owner: arguments[3], limit: limit, idle: .milliseconds(idle))
    case "submit":
        guard arguments.count == 5, let count = Int(arguments[4]), count >= 0 else {
            fail("usage: store-probe submit <dbpath> <user-id> <n>")
        }
        try await submitJobs(path: arguments[2], user: arguments[3], count: count)
    default:
        fail("usage: store-probe claim|submit …")
    }
} catch {
    fail("\(error)")
}
