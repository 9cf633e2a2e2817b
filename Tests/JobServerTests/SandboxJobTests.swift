import Foundation
import Queue
import Testing
import TestSupport

/// The sandbox as jobs see it: the real Claude Code CLI, run by a separate worker process in
/// the real sandbox, issues the escape attempts as Bash tool calls from the scripted model.
/// The Bash tool's output comes back in the job's events, where each attempt is checked.
@Suite(.serialized, .timeLimit(.minutes(5)))
struct SandboxJobTests {
    /// The worker's real key: only the scripted upstream may ever see it.
    static let realKey = "sk-real-" + String(UInt64.random(in: 0 ... .max), radix: 36)

    @Test func escapeAttemptsFromTheCLIsBashToolAllFailAndTheKeyStaysOutside() async throws {
        let listeners = try LoopbackListeners()
        defer { listeners.close() }
        let marker = "jobleftover\(UInt32.random(in: 0 ... .max))"
        // The key is searched for in pieces joined in memory, so no command line carries it.
        let keyHead = String(Self.realKey.prefix(10)), keyTail = String(Self.realKey.dropFirst(10))
        let scan = """
            import os
            key = '\(keyHead)' + '\(keyTail)'
            hits = []
            for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
                for name in ('environ', 'cmdline'):
                    try:
                        if key in open(f'/proc/{pid}/{name}', errors='replace').read(): hits.append(f'{pid}/{name}')
                    except OSError: pass
            for top in ('/home', '/tmp', '/workspace', '/run', '/etc', '/opt'):
                for root, dirs, files in os.walk(top):
                    for f in files:
                        path = os.path.join(root, f)
                        try:
                            if os.path.getsize(path) < 50_000_000 and key.encode() in open(path, 'rb').read(): hits.append(path)
                        except OSError: pass
            print('key-hits:', len(hits), hits[:3])
            print('placeholder:', os.environ.get('ANTHROPIC_API_KEY', '').startswith('sk-jobserver-placeholder-'))
            print('base-url:', os.environ.get('ANTHROPIC_BASE_URL'))
            import urllib.request as u
            for path in ('/v1/models', '/v1/complete', '/'):
                try:
                    u.urlopen(u.Request('http://127.0.0.1:8765' + path, headers={'x-api-key': os.environ['ANTHROPIC_API_KEY']}), timeout=5)
                    print('gateway', path, 'reached')
                except Exception as e: print('gateway', path, getattr(e, 'code', e))
            """
        let command = """
            cp sandbox-probe /tmp/probe && chmod +x /tmp/probe && /tmp/probe all \(listeners.port)
            cat /etc/shadow 2>&1 | head -1; ls /root 2>&1 | head -1
            touch /usr/x 2>&1; id -u
            (exec -a \(marker) sleep 300 &) ; echo leftover started
            python3 - <<'PY'
            \(scan)
            PY
            """
        try await withScriptedModelServer { model in
            model.register([
                ModelTurn.toolUse([.bash(command)]),
                ModelTurn.text("probed"),
            ], as: "escape")
            try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("mallory")
                try await harness.startServer()
                try harness.startWorker(apiKey: Self.realKey)
                let probe = try Data(contentsOf: URL(fileURLWithPath: BuildProducts.path(of: "sandbox-probe")))
                let put = try await harness.request("PUT", "/v1/projects/box/files/sandbox-probe", token: token, body: Array(probe))
                try #require(put.status == 201, "\(put.status): \(put.text)")
                let reply = try await harness.request("POST", "/v1/jobs", token: token, json: [
                    "type": "generate", "project": "box", "prompt": "probe \(ModelScript.marker("escape"))",
                ])
                let id = try #require(reply.json?["id"]?.stringValue)
                let job = try await harness.waitForJob(id, token: token)
                #expect(job["status"]?.stringValue == "succeeded", "\(job)")
                let output = try await Self.toolOutput(harness, job: id, token: token)

                let expected = [
                    "interfaces: lo", "tcp: ECONNREFUSED", "tcp6: ECONNREFUSED", "udp: ECONNREFUSED", "dns: ECONNREFUSED",
                    "ptrace-init: EPERM", "init-mem: EACCES", "unshare-user: EPERM", "clone-userns: EPERM",
                    "mount: EPERM", "setns: EPERM", "chroot: EPERM", "vsock: EAFNOSUPPORT", "netlink: EAFNOSUPPORT",
                    "packet: EAFNOSUPPORT", "alg: EAFNOSUPPORT", "io_uring: ENOSYS", "bpf: EPERM",
                    "perf_event_open: EPERM", "keyctl: EPERM", "userfaultfd: EPERM", "tiocsti: EPERM",
                    "int80: signal 31",
                    "cat: /etc/shadow: No such file or directory",
                    "ls: cannot access '/root': No such file or directory",
                    "touch: cannot touch '/usr/x': Read-only file system", "1000",
                    "leftover started",
                    "key-hits: 0 []", "placeholder: True", "base-url: http://127.0.0.1:8765",
                    "gateway /v1/models 404", "gateway /v1/complete 404", "gateway / 404",
                ]
                for line in expected {
                    #expect(output.contains(line), "missing \"\(line)\" in:\n\(output)")
                }
                #expect(listeners.received() == 0, "a probe reached the host's loopback listener")
                #expect(HostProcesses.matching(marker).isEmpty, "a process started by the agent outlived its job")
                // The upstream saw the real key on every call, and only the two model calls.
                let calls = model.requests.filter { $0.scriptName == "escape" }
                #expect(calls.count == 2)
                #expect(calls.allSatisfy { $0.headers["x-api-key"] == Self.realKey })
            }
        }
    }

    @Test func anAgentStoppedByTheMemoryLimitFailsE008() async throws {
        // Too little memory for the CLI itself: the cgroup stops it.
        let (job, _) = try await Self.runOneJob([ModelTurn.text("never reached")], worker: ["--sandbox-memory-mb", "64"])
        #expect(job["status"]?.stringValue == "failed")
        #expect(job["error"]?["code"]?.stringValue == "E008", "\(job)")
        #expect(job["error"]?["details"]?["limit"]?.stringValue == "memory", "\(job)")
    }

    @Test func aJobPastItsTokenBudgetFailsE008() async throws {
        let (job, upstreamCalls) = try await Self.runOneJob([
            ModelTurn.toolUse([.bash("echo one")]).usage(input: 3000, output: 100),
            ModelTurn.toolUse([.bash("echo two")]).usage(input: 3000, output: 100),
            ModelTurn.text("done"),
        ], worker: ["--job-token-budget", "2000"])
        #expect(job["error"]?["code"]?.stringValue == "E008", "\(job)")
        #expect(job["error"]?["details"]?["limit"]?.stringValue == "job_tokens")
        // The second call was refused at the gateway: the upstream answered only one.
        #expect(upstreamCalls == 1)
    }

    @Test func anAgentFillingItsWorkspacePastTheQuotaIsStoppedWithE008() async throws {
        let (job, _) = try await Self.runOneJob([
            ModelTurn.toolUse([.bash("for i in $(seq 1 40); do head -c 1048576 /dev/zero > fill$i; sleep 0.05; done; echo filled")]),
            ModelTurn.text("done"),
        ], worker: ["--workspace-quota-mb", "8"])
        #expect(job["error"]?["code"]?.stringValue == "E008", "\(job)")
        #expect(job["error"]?["details"]?["limit"]?.stringValue == "workspace_bytes", "\(job)")
        // Stopped well before the 40 MiB the agent meant to write.
        #expect((job["error"]?["details"]?["amount"]?.intValue ?? .max) < 30 << 20)
    }

    /// Runs one `generate` job played by `script` on a sandboxed worker started with `worker`
    /// flags; returns the finished job and how many model calls reached the upstream.
    static func runOneJob(_ script: ModelScript, worker arguments: [String]) async throws -> (JSONValue, Int) {
        try await withScriptedModelServer { model in
            model.register(script, as: "one")
            return try await withServiceHarness(model: model) { harness in
                let token = try await harness.createUser("one")
                try await harness.startServer()
                try harness.startWorker(extraArguments: arguments)
                let reply = try await harness.request("POST", "/v1/jobs", token: token, json: [
                    "type": "generate", "project": "p", "prompt": "go \(ModelScript.marker("one"))",
                ])
                let id = try #require(reply.json?["id"]?.stringValue)
                let job = try await harness.waitForJob(id, token: token)
                return (job, model.requests.filter { $0.scriptName == "one" }.count)
            }
        }
    }

    @Test func aWorkerWhoseSandboxCannotStartRefusesToRun() async throws {
        try await withScriptedModelServer { model in
            try await withServiceHarness(model: model) { harness in
                let worker = try harness.startWorker(extraEnvironment: ["JOBSERVER_LAUNCHER_PATH": "/nonexistent/jobserver-launch"])
                await ServiceHarness.waitForExit(worker)
                #expect(worker.terminationStatus == 78)
            }
        }
    }

    /// The text of every Bash tool result in the job's events.
    static func toolOutput(_ harness: ServiceHarness, job id: String, token: String) async throws -> String {
        let page = try await harness.request("GET", "/v1/jobs/\(id)/events?limit=1000", token: token).json
        var texts: [String] = []
        for event in page?["events"]?.arrayValue ?? [] where event["type"]?.stringValue == "user" {
            for block in event["data"]?["message"]?["content"]?.arrayValue ?? [] where block["type"]?.stringValue == "tool_result" {
                if let text = block["content"]?.stringValue { texts.append(text) }
                for part in block["content"]?.arrayValue ?? [] { if let text = part["text"]?.stringValue { texts.append(text) } }
            }
        }
        return texts.joined(separator: "\n")
    }
}
