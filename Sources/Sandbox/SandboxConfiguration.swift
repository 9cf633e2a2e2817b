#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// How the sandbox is set up for every job of a worker (DESIGN §6). The defaults suit a
/// small team's host; every size is a hard limit the kernel enforces.
public struct SandboxConfiguration: Sendable, Hashable {
    /// Whether cgroup limits (memory, pids, CPU) are required, used where delegated, or off.
    public enum CgroupMode: String, Sendable, Hashable, CaseIterable {
        case off, auto, required
    }

    /// Which unprivileged host ids the sandbox's uid/gid 1000 map to.
    public enum Identity: Sendable, Hashable {
        /// The worker's own uid and gid: the only choice of an unprivileged worker.
        case worker
        /// A root worker: a uid per user from `first ..< first + count` (gid the same), so
        /// two users' agents never share a host identity. The range must be unused on the host.
        case perUser(first: UInt32, count: UInt32)

        /// `.perUser` for a root worker, `.worker` otherwise.
        public static var forCurrentProcess: Identity {
            geteuid() == 0 ? .perUser(first: 1_500_000_000, count: 1_000_000) : .worker
        }
    }

    public var identity: Identity
    public var cgroups: CgroupMode
    /// Memory for the whole sandbox (cgroup), swap excluded.
    public var memoryBytes: UInt64?
    /// Processes and threads in the sandbox (cgroup).
    public var maxProcesses: UInt64?
    /// CPU time per second of wall clock, in milliseconds (1000 = one core).
    public var cpuMillis: UInt64?
    /// Size of the sandbox's `/tmp` and of its `$HOME` (tmpfs, counted as the sandbox's memory).
    public var tmpBytes: UInt64
    public var homeBytes: UInt64
    /// The 127.0.0.1 port inside the sandbox that forwards to the model gateway.
    public var gatewayPort: Int
    /// Where the cgroup filesystem is mounted, if not `/sys/fs/cgroup` (`JOBSERVER_CGROUP_ROOT`).
    public var cgroupRoot: String?
    /// cgroup v2: the delegated directory job cgroups go under (`JOBSERVER_CGROUP_PARENT`);
    /// default the worker's own cgroup.
    public var cgroupParent: String?

    public init(
        identity: Identity = .forCurrentProcess, cgroups: CgroupMode? = nil, memoryBytes: UInt64? = 4 << 30,
        maxProcesses: UInt64? = 512, cpuMillis: UInt64? = nil, tmpBytes: UInt64 = 512 << 20,
        homeBytes: UInt64 = 256 << 20, gatewayPort: Int = 8765, cgroupRoot: String? = nil, cgroupParent: String? = nil
    ) {
        self.cgroupRoot = cgroupRoot
        self.cgroupParent = cgroupParent
        self.identity = identity
        self.cgroups = cgroups ?? (geteuid() == 0 ? .required : .auto)
        self.memoryBytes = memoryBytes
        self.maxProcesses = maxProcesses
        self.cpuMillis = cpuMillis
        self.tmpBytes = tmpBytes
        self.homeBytes = homeBytes
        self.gatewayPort = gatewayPort
    }

    /// The host uid and gid for `userKey`.
    func hostIDs(for userKey: String) -> (uid: UInt32, gid: UInt32) {
        switch identity {
        case .worker:
            return (geteuid(), getegid())
        case .perUser(let first, let count):
            // FNV-1a: stable across processes and releases, unlike Hasher.
            var hash: UInt32 = 2_166_136_261
            for byte in userKey.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
            let uid = first + hash % max(count, 1)
            return (uid, uid)
        }
    }
}
