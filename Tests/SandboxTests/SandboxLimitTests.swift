import Foundation
import Sandbox
import Testing
import TestSupport

/// Limits and the end of the process tree, in the real sandbox. As root the cgroup limits
/// hold (memory, pids); an unprivileged worker without delegated cgroups gets the rlimits
/// that stand in for them. Either way nothing outlives the sandbox.
@Suite("Sandbox limits")
struct SandboxLimitTests {
    @Test("a memory bomb is stopped at the sandbox's memory limit")
    func memoryBomb() async throws {
        let run = try await SandboxFixture.shell(
            "python3 -c 'b = [bytearray(16 << 20) for _ in range(64)]; print(\"allocated\")' 2>&1 | tail -1; echo rc=$?")
        #expect(!run.lines.contains("allocated"), "1 GiB allocated under a 256 MiB limit: \(run.output)")
        if run.report.usage?.cgroup == true {
            #expect(run.report.usage?.limit == "memory", "\(run.output)")
        } else {
            #expect(run.output.contains("MemoryError"), "the address-space rlimit stands in: \(run.output)")
        }
    }

    @Test("a fork bomb is stopped at the sandbox's process limit, and dies with the sandbox")
    func forkBomb() async throws {
        let run = try await SandboxFixture.shell(
            "for i in $(seq 1 200); do sleep 30 & done 2>&1 | grep -m1 -o 'Cannot fork\\|Resource temporarily unavailable'; echo done")
        #expect(run.lines.first == "Cannot fork" || run.lines.first == "Resource temporarily unavailable", "\(run.output)")
        #expect(run.lines.last == "done")
        #expect(run.report.duration < .seconds(25), "the sleepers were killed with the sandbox, not waited for")
        if run.report.usage?.cgroup == true { #expect(run.report.usage?.limit == "pids") }
    }

    @Test("the CPU quota holds a busy loop to its share", .enabled(if: SandboxFixture.isRoot))
    func cpuQuota() async throws {
        var configuration = SandboxFixture.configuration
        configuration.cpuMillis = 200  // a fifth of a core
        let run = try await SandboxFixture.run(
            "/usr/bin/timeout", ["2", "/bin/sh", "-c", "while :; do :; done"], configuration: configuration)
        let cpu = try #require(run.report.usage?.cpuMs)
        #expect(run.report.usage?.cgroup == true)
        // Unlimited, two seconds of spinning is ~2000 ms of CPU; at 0.2 CPU about 400.
        #expect(cpu < 1000, "used \(cpu) ms of CPU in 2 s at a 0.2 CPU quota")
    }

    /// This host mounts v1 controllers, with an empty v2 hierarchy beside them
    /// (/sys/fs/cgroup/unified): enough to run the v2 path (group, attach, `cgroup.kill`,
    /// removal) without v2 limits.
    @Test("cgroup v2: the sandbox runs in a group of its own, which is removed afterwards",
          .enabled(if: SandboxFixture.isRoot && SandboxFixture.isCgroup2("/sys/fs/cgroup/unified")))
    func cgroupV2() async throws {
        let name = "v2test\(UInt32.random(in: 0 ... .max))"
        let marker = "v2sleeper\(UInt32.random(in: 0 ... .max))"
        let process = Process()
        process.executableURL = URL(fileURLWithPath: SandboxFixture.launcher)
        process.arguments = ["--sandbox"] + SandboxFixture.identityArguments + [
            "--cgroup", "required", "--cgroup-name", name, "--cgroup-root", "/sys/fs/cgroup/unified",
            "--", "/usr/bin/bash", "-c", "exec -a \"$MARKER\" sleep 120",
        ]
        process.environment = ["MARKER": marker, "PATH": "/usr/bin:/bin"]
        try process.run()
        let sleeper = await poll { !HostProcesses.matching(marker).isEmpty }
        #expect(sleeper)
        if let pid = HostProcesses.matching(marker).first {
            let membership = (try? String(contentsOfFile: "/proc/\(pid)/cgroup", encoding: .utf8)) ?? ""
            #expect(membership.contains("0::/jobserver-\(name).p\(process.processIdentifier)"), "\(membership)")
        }
        // Stopped the way the worker stops a cancelled job; the launcher then empties the group.
        kill(process.processIdentifier, SIGTERM)
        await ServiceHarness.waitForExit(process)
        #expect(process.terminationStatus == 128 + SIGKILL, "the sandbox was killed, not set up wrong")
        #expect(HostProcesses.matching(marker).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified/jobserver-\(name).p\(process.processIdentifier)"))
    }

    /// Where this process's job groups go in the v1 memory hierarchy (the launcher's own group).
    static func memoryGroupParent() throws -> String {
        let lines = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8).split(separator: "\n")
        let own = try #require(lines.first { $0.split(separator: ":").dropFirst().first?.split(separator: ",").contains("memory") == true })
        return "/sys/fs/cgroup/memory" + String(own.split(separator: ":", maxSplits: 2)[2])
    }

    @Test("groups left by a launcher killed with its worker are removed by the next launch",
          .enabled(if: SandboxFixture.isRoot && FileManager.default.fileExists(atPath: "/sys/fs/cgroup/memory")))
    func staleGroupsAreSwept() async throws {
        let parent = try Self.memoryGroupParent()
        let name = "stale\(UInt32.random(in: 0 ... .max))"
        let marker = "stale-sleeper-\(UInt32.random(in: 0 ... .max))"
        // A stand-in worker killed with -9 while its sandbox runs: the launcher dies without
        // cleaning up, and its group stays.
        let worker = Process()
        worker.executableURL = URL(fileURLWithPath: "/bin/sh")
        worker.environment = ["MARKER": marker, "PATH": "/usr/bin:/bin"]
        let launch = [SandboxFixture.launcher, "--sandbox"] + SandboxFixture.identityArguments
            + ["--cgroup", "required", "--cgroup-name", name, "--", "/usr/bin/bash", "-c", "exec -a \"$MARKER\" sleep 300"]
        worker.arguments = ["-c", launch.map { "'\($0)'" }.joined(separator: " ") + " & wait"]
        try worker.run()
        #expect(await poll { !HostProcesses.matching(marker).isEmpty }, "the sandboxed sleeper never started")
        let groups = { (try? FileManager.default.contentsOfDirectory(atPath: parent))?.filter { $0.hasPrefix("jobserver-\(name).p") } ?? [] }
        #expect(groups().count == 1, "\(groups())")
        kill(worker.processIdentifier, SIGKILL)
        await ServiceHarness.waitForExit(worker)
        #expect(await poll { HostProcesses.matching(marker).isEmpty }, "the sandbox outlived its worker")
        #expect(groups().count == 1, "the killed launcher's group is left behind")
        // Once the killed launcher is gone (reaped) and its group has emptied, the next launch removes it.
        let stale = try #require(groups().first)
        let launcherPID = try #require(stale.split(separator: ".").last.map { $0.dropFirst() })
        let emptied = await poll {
            !FileManager.default.fileExists(atPath: "/proc/\(launcherPID)")
                && ((try? String(contentsOfFile: parent + "/" + stale + "/cgroup.procs", encoding: .utf8)) ?? "").isEmpty
        }
        #expect(emptied, "the killed launcher or its processes lingered")

        // A group named for a live process (this one) must survive the sweep.
        let decoy = parent + "/jobserver-decoy\(UInt32.random(in: 0 ... .max)).p\(getpid())"
        try FileManager.default.createDirectory(atPath: decoy, withIntermediateDirectories: false)
        defer { rmdir(decoy) }
        let next = try await runLauncher(["--sandbox"] + SandboxFixture.identityArguments + [
            "--cgroup", "required", "--cgroup-name", "sweeper\(getpid())", "--", "/usr/bin/true",
        ])
        #expect(next.status == 0, "\(next.stderr)")
        #expect(groups().isEmpty, "the stale group is still there: \(groups())")
        #expect(FileManager.default.fileExists(atPath: decoy), "a live launcher's group was removed")
    }

    @Test("filling /tmp stops at its size")
    func fillTmp() async throws {
        let run = try await SandboxFixture.shell("dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1 | head -1; du -m /tmp/fill | cut -f1")
        #expect(run.lines.first?.contains("No space left on device") == true, "\(run.output)")
        #expect(Int(run.lines.last ?? "") ?? 99 <= 8)
    }

    @Test("a process left running after the agent exits is killed with the sandbox")
    func leftover() async throws {
        let marker = "leftover-\(UInt32.random(in: 0 ... .max))"
        let run = try await SandboxFixture.shell(
            "setsid bash -c 'exec -a \(marker) sleep 300' </dev/null >/dev/null 2>&1 & sleep 0.2; pgrep -c -f '^\(marker)'")
        #expect(run.lines == ["1"], "the leftover was running when the agent exited: \(run.output)")
        #expect(HostProcesses.matching(marker).isEmpty, "a sandboxed process outlived its sandbox")
    }

    @Test("kill -9 of the worker kills the sandbox and everything in it")
    func workerKilled() async throws {
        let marker = "orphan-\(UInt32.random(in: 0 ... .max))"
        try await withTemporaryDirectory(prefix: "sandbox-kill-") { root in
            try FileManager.default.createDirectory(atPath: root + "/work", withIntermediateDirectories: true)
            // A stand-in worker: a shell that starts the launcher and waits.
            // The marker reaches the sandbox in the environment, so only the sleeper's command
            // line carries it.
            let launch = [SandboxFixture.launcher, "--sandbox"] + SandboxFixture.identityArguments
                + ["--bind", root + "/work", "/workspace", "--cwd", "/workspace",
                   "--", "/usr/bin/bash", "-c", "exec -a \"$MARKER\" sleep 300"]
            let worker = Process()
            worker.executableURL = URL(fileURLWithPath: "/bin/sh")
            worker.environment = ["MARKER": marker, "PATH": "/usr/bin:/bin"]
            worker.arguments = ["-c", launch.map { "'\($0)'" }.joined(separator: " ") + " & wait"]
            try worker.run()
            let started = await poll { !HostProcesses.matching(marker).isEmpty }
            #expect(started, "the sandboxed sleeper never started")
            kill(worker.processIdentifier, SIGKILL)
            let gone = await poll { HostProcesses.matching(marker).isEmpty }
            #expect(gone, "the sandbox outlived its worker")
            await ServiceHarness.waitForExit(worker)
        }
    }

    @Test("fail closed: a sandbox that cannot be set up runs nothing and says why (exit 125)")
    func failClosed() async throws {
        try await withTemporaryDirectory(prefix: "sandbox-closed-") { root in
            let marker = root + "/ran"
            // A bind source that does not exist: the set-up fails before anything runs.
            let result = try await runLauncher([
                "--sandbox"] + SandboxFixture.identityArguments + ["--bind", root + "/missing", "/workspace", "--",
                "/bin/sh", "-c", "touch \(marker)",
            ])
            #expect(result.status == 125)
            #expect(result.stderr.hasPrefix("jobserver-launch: \(root)/missing: No such file or directory"), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: marker))
            // Mapping the sandbox to host root is refused outright.
            let rootMap = try await runLauncher(["--sandbox", "--map-uid", "0", "--map-gid", "0", "--", "/usr/bin/true"])
            #expect(rootMap.status == 125)
            #expect(rootMap.stderr.contains("refusing to map the sandbox user to host root"))
        }
    }

    @Test("cgroups required but not available: refused with the reason")
    func cgroupsRequired() async throws {
        let result = try await runLauncher([
            "--sandbox", "--cgroup", "required", "--cgroup-name", "../escape", "--", "/usr/bin/true",
        ])
        #expect(result.status == 125)
        #expect(result.stderr.contains("--cgroup-name: bad name"), "\(result.stderr)")
        if !SandboxFixture.isRoot {
            let unprivileged = try await runLauncher([
                "--sandbox", "--cgroup", "required", "--cgroup-name", "t\(getpid())", "--memory", "100000000", "--", "/usr/bin/true",
            ])
            #expect(unprivileged.status == 125)
            #expect(unprivileged.stderr.hasPrefix("jobserver-launch: cgroup:"), "\(unprivileged.stderr)")
        }
    }

    private func runLauncher(_ arguments: [String]) async throws -> (status: Int32, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: SandboxFixture.launcher)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        await ServiceHarness.waitForExit(process)
        let text = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        return (process.terminationStatus, text)
    }

    private func poll(_ condition: () -> Bool) async -> Bool {
        for _ in 0..<1200 {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return condition()
    }
}
