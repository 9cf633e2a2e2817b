// Sandbox mode: the order of the isolation steps (DESIGN §6).
//
//   launcher (host, the worker's uid)            sandbox init (PID 1 of new namespaces)
//   ---------------------------------            --------------------------------------
//   drop supplementary groups (root)
//   create the job's cgroup
//   clone(NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS) ──▶ wait for "go"
//   write uid_map/gid_map: 1000 → the unprivileged
//     host uid/gid (never root), setgroups deny
//   "go" ─────────────────────────────────────────▶ open the bind sources (worker's credentials)
//   move the child into the cgroup                 become uid/gid 1000 (keeps its capabilities
//                                                    in the new user namespace only)
//                                                  arm the parent-death signal
//                                                  hostname; loopback up
//                                                  listen on 127.0.0.1:PORT (gateway forwarder)
//                                                  new root, pivot_root, own /proc (mounts.c)
//                                                  no nested user namespaces
//   "cgroup attached" ────────────────────────────▶ wait for it; unshare(NEWCGROUP)
//                                                  no_new_privs, drop every capability,
//                                                  seccomp filter (seccomp.c, caps.c)
//                                                  fork the agent: setsid, rlimits, exec
//   wait ◀──────────── "status N" or an error ──── reap; when the agent exits, kill the rest
//   kill what is left in the cgroup, read its
//   counters, remove it
//
// Any failed step on either side ends the launch with exit status 125 and one line on stderr:
// nothing of the agent runs unless every step succeeded.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher.h"

#define SANDBOX_ID 1000

static volatile sig_atomic_t sandbox_pid = 0;

static void kill_sandbox(int sig) {
    (void)sig;
    if (sandbox_pid > 0) kill(sandbox_pid, SIGKILL);
}

static void bring_up_loopback(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) fail("loopback socket");
    struct ifreq request;
    memset(&request, 0, sizeof request);
    strncpy(request.ifr_name, "lo", IFNAMSIZ - 1);
    if (ioctl(fd, SIOCGIFFLAGS, &request) != 0) fail("loopback flags");
    request.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (ioctl(fd, SIOCSIFFLAGS, &request) != 0) fail("loopback up");
    close(fd);
}

/// True while the launcher lives: it holds the write end of the "go" pipe open until it exits.
static bool launcher_alive(int sync_fd) {
    struct pollfd p = { .fd = sync_fd, .events = POLLIN };
    int n;
    do { n = poll(&p, 1, 0); } while (n < 0 && errno == EINTR);
    return n >= 0 && (p.revents & (POLLHUP | POLLERR)) == 0;  // POLLIN alone: "c" is already there
}

static int open_source(const char *path) {
    int fd = open(path, O_PATH | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) fail(path);
    return fd;
}

_Noreturn static void child_setup(struct options *o, int sync_fd, int status_fd) {
    char go = 0;
    if (read_retry(sync_fd, &go, 1) != 1 || go != 'g') _exit(SETUP_FAILED);  // the launcher gave up
    // Open what is to be bound while this process still has the worker's credentials (and is
    // in this mount namespace, where bind sources must be): the paths to these files need not
    // be reachable by the unprivileged uid the sandbox runs as.
    for (int i = 0; i < o->nbinds; i++) o->binds[i].fd = open_source(o->binds[i].source);
    o->gateway_fd = o->gateway_socket != NULL ? open_source(o->gateway_socket) : -1;
    // uid/gid 0 are not mapped, so becoming 1000 keeps this process's capabilities in its new
    // user namespace (and none outside it) for the mounts below.
    if (setresgid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) != 0) fail("setresgid");
    if (setresuid(SANDBOX_ID, SANDBOX_ID, SANDBOX_ID) != 0) fail("setresuid");
    // Changing credentials cleared the parent-death signal: arm it again, then make sure the
    // launcher did not die in between.
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl(PDEATHSIG)");
    if (!launcher_alive(sync_fd)) _exit(SETUP_FAILED);
    const char *hostname = o->hostname != NULL ? o->hostname : "sandbox";
    if (sethostname(hostname, strlen(hostname)) != 0) fail("sethostname");
    bring_up_loopback();
    int listen_fd = -1;
    if (o->gateway_socket != NULL) {
        listen_fd = open_forward_listener(o->gateway_port);
        if (listen_fd < 0) fail("gateway forwarder listen");
    }
    build_root_and_pivot(o);
    // The host paths opened for the binds are mounted now; none stays open inside.
    for (int i = 0; i < o->nbinds; i++) close(o->binds[i].fd);
    if (o->gateway_fd >= 0) close(o->gateway_fd);
    // No nested user namespaces: none may be created under this one (seccomp also refuses
    // the flags; this holds even for a path the filter does not see).
    if (write_file("/proc/sys/user/max_user_namespaces", "0") != 0) fail("max_user_namespaces");
    char attached = 0;
    if (read_retry(sync_fd, &attached, 1) != 1 || attached != 'c') _exit(SETUP_FAILED);  // not in its cgroup
    // Now in the job's cgroup: make it the root of what the sandbox sees of cgroups.
    if (unshare(CLONE_NEWCGROUP) != 0) fail("unshare(cgroup namespace)");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("prctl(NO_NEW_PRIVS)");
    drop_all_capabilities();
    load_seccomp_filter();
    close(sync_fd);  // nothing more comes from the launcher
    sandbox_init(o, listen_fd, status_fd);
}

static void write_id_maps(pid_t child, uid_t uid, gid_t gid) {
    char path[64], map[64];
    snprintf(map, sizeof map, "%d %u 1\n", SANDBOX_ID, (unsigned)uid);
    snprintf(path, sizeof path, "/proc/%d/uid_map", (int)child);
    if (write_file(path, map) != 0) fail("uid_map");
    snprintf(path, sizeof path, "/proc/%d/setgroups", (int)child);
    if (write_file(path, "deny") != 0) fail("setgroups deny");
    snprintf(map, sizeof map, "%d %u 1\n", SANDBOX_ID, (unsigned)gid);
    snprintf(path, sizeof path, "/proc/%d/gid_map", (int)child);
    if (write_file(path, map) != 0) fail("gid_map");
}

/// Reads everything the sandbox's init says until it exits: "status N" or an error line.
static size_t read_messages(int fd, char *buffer, size_t capacity) {
    size_t used = 0;
    for (;;) {
        ssize_t n = read_retry(fd, buffer + used, capacity - 1 - used);
        if (n <= 0) break;
        used += (size_t)n;
        if (used == capacity - 1) break;
    }
    buffer[used] = '\0';
    return used;
}

static uid_t owner_uid;
static gid_t owner_gid;

static int hand_over(const char *path, const struct stat *info, int type, struct FTW *where) {
    (void)info; (void)type; (void)where;
    return lchown(path, owner_uid, owner_gid) == 0 ? 0 : -1;
}

/// A root launcher hands each writable bind over to the sandbox's host uid (never following
/// symlinks), so the agent can change its workspace; the worker reads it back as root.
static void hand_over_writable_binds(const struct options *o, uid_t uid, gid_t gid) {
    owner_uid = uid;
    owner_gid = gid;
    for (int i = 0; i < o->nbinds; i++) {
        if (o->binds[i].writable && nftw(o->binds[i].source, hand_over, 32, FTW_PHYS) != 0) fail(o->binds[i].source);
    }
}

static void add_limit_unless_set(struct options *o, int resource, unsigned long long value) {
    if (value == 0) return;
    for (int i = 0; i < o->nlimits; i++) if (o->limits[i].resource == resource) return;
    if (o->nlimits == MAX_LIMITS) fail_msg("rlimit", "too many limits");
    o->limits[o->nlimits++] = (struct limit){ resource, (rlim_t)value };
}

/// Where no cgroup holds the sandbox, rlimits stand in, looser: each process's address space
/// gets the memory limit (it counts reservations, per process), and the sandbox user's
/// processes the pids limit (counted across every process of that host uid).
static void limit_memory_without_cgroup(struct options *o) {
    if (cgroup_enforced()) return;
    add_limit_unless_set(o, RLIMIT_AS, o->cgroup.memory_bytes);
    add_limit_unless_set(o, RLIMIT_NPROC, o->cgroup.pids);
}

int run_sandboxed(struct options *o, struct cgroup_report *report) {
    uid_t uid = geteuid();
    gid_t gid = getegid();
    uid_t map_uid = o->map_uid_set ? o->map_uid : uid;
    gid_t map_gid = o->map_uid_set ? o->map_gid : gid;
    if (map_uid == 0 || map_gid == 0) fail_msg("uid map", "refusing to map the sandbox user to host root");
    if (uid != 0 && (map_uid != uid || map_gid != gid)) {
        fail_msg("uid map", "an unprivileged launcher maps only its own uid and gid");
    }
    if (uid == 0 && setgroups(0, NULL) != 0) fail("setgroups");  // root's groups must not follow
    if (uid == 0) hand_over_writable_binds(o, map_uid, map_gid);
    if (o->program[0][0] != '/') fail_msg("program", "must be an absolute path inside the sandbox");
    if (cgroup_prepare(&o->cgroup) != 0) fail_msg("cgroup", cgroup_failure());
    limit_memory_without_cgroup(o);

    int sync_pipe[2], status_pipe[2];
    if (pipe2(sync_pipe, O_CLOEXEC) != 0 || pipe2(status_pipe, O_CLOEXEC) != 0) fail("pipe2");
    sigset_t previous;
    block_kill_signals(&previous);

    long flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    pid_t child = (pid_t)syscall(SYS_clone, flags | SIGCHLD, NULL, NULL, NULL, NULL);
    if (child < 0) fail("clone(namespaces)");
    if (child == 0) {
        close(sync_pipe[1]);
        close(status_pipe[0]);
        sigprocmask(SIG_SETMASK, &previous, NULL);
        set_report_fd(status_pipe[1]);
        child_setup(o, sync_pipe[0], status_pipe[1]);
    }
    close(sync_pipe[0]);
    close(status_pipe[1]);
    sandbox_pid = child;
    install_kill_handlers(kill_sandbox);
    sigprocmask(SIG_SETMASK, &previous, NULL);

    write_id_maps(child, map_uid, map_gid);
    if (write_all(sync_pipe[1], "g", 1) != 0) fail("start sandbox");
    // Moving a process into a v1 cgroup waits for an RCU grace period (~10 ms here): do it
    // while the sandbox builds its root. The sandbox waits for "c" before anything of the
    // agent runs, so nothing untrusted ever runs outside the cgroup.
    if (cgroup_attach(child) != 0) {
        kill(child, SIGKILL);
        cgroup_finish(report);
        fail_msg("cgroup attach", cgroup_failure());
    }
    if (write_all(sync_pipe[1], "c", 1) != 0) fail("start sandbox");

    char messages[1024];
    read_messages(status_pipe[0], messages, sizeof messages);
    int status = 0;
    pid_t waited;
    do { waited = waitpid(child, &status, 0); } while (waited < 0 && errno == EINTR);
    cgroup_kill_all();
    cgroup_finish(report);
    close(sync_pipe[1]);

    int agent_status = 0;
    if (sscanf(messages, "status %d", &agent_status) == 1) return agent_status;
    if (messages[0] != '\0') {
        (void)write_all(STDERR_FILENO, messages, strlen(messages));
        _exit(SETUP_FAILED);
    }
    // The sandbox died without a word: killed by the launcher's signal handler (cancel) or
    // by the kernel (the cgroup's OOM killer); report it as the agent's death.
    return status;
}
