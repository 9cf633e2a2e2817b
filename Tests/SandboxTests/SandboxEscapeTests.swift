import Foundation
import Sandbox
import Testing
import TestSupport

/// Escape attempts run as real processes in the real sandbox (DESIGN §6). Each must fail, and
/// each test checks the specific way it fails. The whole suite also runs as an unprivileged
/// user in CI (scripts/test.sh), where the sandbox maps to that user's own uid.
@Suite("Sandbox escape battery")
struct SandboxEscapeTests {
    @Test("network: only loopback inside; the host's loopback ports, UDP, DNS and IPv6 are unreachable")
    func network() async throws {
        try await withLoopbackListeners { port, received in
            let run = try await SandboxFixture.run(SandboxFixture.probe, ["all", "\(port)"])
            #expect(run.probe("interfaces") == "lo", "\(run.output)")
            #expect(run.probe("tcp") == "ECONNREFUSED")
            #expect(run.probe("tcp6") == "ECONNREFUSED")
            #expect(run.probe("udp") == "ECONNREFUSED")
            #expect(run.probe("dns") == "ECONNREFUSED")
            #expect(received() == 0, "a probe reached the host's listener")
        }
        let resolver = try await SandboxFixture.shell("grep -c nameserver /etc/resolv.conf; cat /etc/hosts")
        #expect(resolver.lines.first == "0", "no resolver is configured inside")
    }

    @Test("system calls: tracing, namespaces, mounts, kernel interfaces and foreign ABIs are refused")
    func systemCalls() async throws {
        let run = try await SandboxFixture.run(SandboxFixture.probe, ["all", "1"])
        let expected: [String: String] = [
            "ptrace-init": "EPERM", "init-mem": "EACCES", "unshare-user": "EPERM", "unshare-mount": "EPERM",
            "clone-userns": "EPERM", "clone3": "ENOSYS", "mount": "EPERM", "setns": "EPERM", "chroot": "EPERM",
            "vsock": "EAFNOSUPPORT", "netlink": "EAFNOSUPPORT", "packet": "EAFNOSUPPORT", "alg": "EAFNOSUPPORT",
            "io_uring": "ENOSYS", "bpf": "EPERM", "perf_event_open": "EPERM", "keyctl": "EPERM",
            "userfaultfd": "EPERM", "personality": "EPERM", "tiocsti": "EPERM",
            "int80": "signal \(SIGSYS)",
        ]
        for (probe, result) in expected.sorted(by: { $0.key < $1.key }) {
            #expect(run.probe(probe) == result, "\(probe): \(run.probe(probe) ?? "missing")")
        }
        #expect(run.report.exitCode == 0)
    }

    @Test("identity: uid 1000 inside, an unprivileged uid outside, no capabilities, no_new_privs, seccomp on")
    func identity() async throws {
        let run = try await SandboxFixture.shell(
            "id -u; id -g; grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status; cat /proc/self/uid_map")
        #expect(run.lines.prefix(2) == ["1000", "1000"])
        for set in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
            #expect(run.lines.contains("\(set):\t0000000000000000"), "\(run.output)")
        }
        #expect(run.lines.contains("NoNewPrivs:\t1"))
        #expect(run.lines.contains("Seccomp:\t2"))
        let map = try #require(run.lines.last?.split(separator: " ", omittingEmptySubsequences: true))
        #expect(map.count == 3 && map[0] == "1000" && map[2] == "1")
        let hostUID = UInt32(map[1]) ?? 0
        #expect(hostUID != 0, "the sandbox user must never be host root")
        if SandboxFixture.isRoot {
            #expect(hostUID >= 1_500_000_000, "a root worker maps each user to a uid of the sandbox range")
        } else {
            #expect(hostUID == geteuid())
        }
    }

    @Test("each user gets a distinct host uid when the worker is root", .enabled(if: SandboxFixture.isRoot))
    func perUserIdentity() async throws {
        let a = try await SandboxFixture.shell("cat /proc/self/uid_map", userKey: "usr_alice")
        let b = try await SandboxFixture.shell("cat /proc/self/uid_map", userKey: "usr_bob")
        #expect(a.output != b.output, "\(a.output) / \(b.output)")
    }

    @Test("filesystem: no secrets, no host homes, no data dir, no other workspace; system dirs read-only")
    func filesystem() async throws {
        try await withTemporaryDirectory(prefix: "sandbox-other-") { other in
            FileManager.default.createFile(atPath: other + "/secret.txt", contents: Data("other user".utf8))
            let script = """
                cat /etc/shadow 2>&1; ls /root 2>&1; ls /home; ls \(other) 2>&1; ls \(ClaudeCLI.packageRoot.path) 2>&1
                for path in /usr/probe /probe /etc/probe /opt/jobserver/agent; do touch $path 2>&1; done
                echo ok > /workspace/written && cat /workspace/written
                echo ok > /tmp/written && cat /tmp/written
                echo ok > $HOME/written && cat $HOME/written
                """
            let run = try await SandboxFixture.shell(script)
            let output = run.output
            #expect(output.contains("/etc/shadow: No such file or directory"))
            #expect(output.contains("/root': No such file or directory"))
            #expect(run.lines.contains("agent"))
            #expect(output.contains("\(other)': No such file or directory"))
            #expect(output.contains("\(ClaudeCLI.packageRoot.path)': No such file or directory"))
            // The agent binary is the host's (here /bin/sh, owned by root: unwritable to uid 1000
            // before the read-only mount is even considered).
            #expect(output.contains("cannot touch '/opt/jobserver/agent': Permission denied"))
            for path in ["/usr/probe", "/probe", "/etc/probe"] {
                #expect(output.contains("cannot touch '\(path)': Read-only file system"), "\(path): \(output)")
            }
            #expect(run.lines.filter { $0 == "ok" }.count == 3, "workspace, /tmp and $HOME are writable")
        }
    }

    @Test("a symlink in the workspace pointing outside resolves inside the sandbox, not on the host")
    func symlinkOut() async throws {
        try await withTemporaryDirectory(prefix: "sandbox-link-") { root in
            let secret = root + "/host-secret.txt"
            try "host secret".write(toFile: secret, atomically: true, encoding: .utf8)
            let work = root + "/work"
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            try FileManager.default.createSymbolicLink(atPath: work + "/planted", withDestinationPath: secret)
            let run = try await SandboxFixture.shell(
                "cat /workspace/planted 2>&1; ln -s /etc/passwd /workspace/made && cat /workspace/made | head -1", workspace: work)
            #expect(run.output.contains("/workspace/planted: No such file or directory"), "\(run.output)")
            #expect(!run.output.contains("host secret"))
            #expect(run.lines.last == "root:x:0:0:root:/root:/usr/sbin/nologin", "the sandbox's own generated /etc/passwd")
        }
    }

    @Test("setuid binaries gain nothing: nosuid mounts and no_new_privs")
    func setuid() async throws {
        let run = try await SandboxFixture.shell(
            "ls -l /usr/bin/passwd | cut -c1-10; /usr/bin/passwd -S root 2>&1; echo rc=$?; su -c id root </dev/null 2>&1; echo rc=$?")
        #expect(run.lines.first == "-rwsr-xr-x", "the binary is setuid on the host: \(run.output)")
        #expect(run.output.contains("You may not view or modify password information for root"), "\(run.output)")
        #expect(!run.lines.contains { $0.hasPrefix("uid=0") })
    }

    @Test("useful inside: git, python3, a pipeline")
    func toolsWork() async throws {
        let script = """
            cd /workspace && git init -q . && git -c user.email=a@b -c user.name=agent commit -q --allow-empty -m init && git log --format=%s
            python3 -c 'print(sum(range(10)))'
            seq 1 5 | sort -r | head -2 | tr '\\n' ' '; echo
            """
        let run = try await SandboxFixture.shell(script)
        #expect(run.lines == ["init", "45", "5 4 "], "\(run.output) \(run.report.stderrTail)")
    }

    /// A TCP listener on 127.0.0.1 and ::1 and a UDP socket on 127.0.0.1, on one port, that
    /// count what reaches them.
    private func withLoopbackListeners(_ body: (Int, @Sendable () -> Int) async throws -> Void) async throws {
        let listeners = try LoopbackListeners()
        defer { listeners.close() }
        try await body(listeners.port, { listeners.received() })
    }
}
