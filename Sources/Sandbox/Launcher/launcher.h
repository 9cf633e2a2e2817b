// Shared declarations of jobserver-launch. See main.c for the command line and the contract
// with the worker, sandbox.c for the order of the isolation steps.
#ifndef JOBSERVER_LAUNCHER_H
#define JOBSERVER_LAUNCHER_H

#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/types.h>

#define SETUP_FAILED 125
#define MAX_LIMITS 16
#define MAX_BINDS 32

struct limit { int resource; rlim_t value; };

/// A host path made visible inside. The sandbox opens `source` (O_PATH) while it still has
/// the worker's credentials and binds that descriptor: the path to it need not be reachable
/// by the sandbox's unprivileged uid.
struct bind { const char *source; const char *target; bool writable; int fd; };

struct tmpfs { const char *target; unsigned long long size_bytes; };

enum cgroup_mode { CGROUP_OFF, CGROUP_AUTO, CGROUP_REQUIRED };

struct cgroup_limits {
    enum cgroup_mode mode;
    const char *name;                 // leaf name, unique per job attempt
    const char *root;                 // mount point of the cgroup filesystem (NULL: /sys/fs/cgroup)
    const char *parent;               // v2: the delegated directory (NULL: the launcher's cgroup)
    unsigned long long memory_bytes;  // 0: unset
    unsigned long long pids;          // 0: unset
    unsigned long long cpu_millis;    // CPU time per second of wall clock; 0: unset
};

/// What the cgroup saw of the job, for the worker's report (limit breaches are E008).
struct cgroup_report { bool memory_limit_hit; bool pids_limit_hit; long long peak_memory_bytes; bool enforced; };

struct options {
    const char *cwd;
    const char *rusage_file;
    struct limit limits[MAX_LIMITS];
    int nlimits;
    // Sandbox mode only.
    bool sandbox;
    uid_t map_uid;
    gid_t map_gid;
    bool map_uid_set;
    struct bind binds[MAX_BINDS];
    int nbinds;
    struct tmpfs tmpfs[8];
    int ntmpfs;
    const char *gateway_socket;   // host path of the model gateway's Unix socket
    int gateway_fd;               // opened like a bind's source
    unsigned gateway_port;        // 127.0.0.1 port inside that forwards to it
    const char *hostname;
    struct cgroup_limits cgroup;
    char **program;               // argv of the agent, NULL-terminated
};

// Error reporting. Before the sandbox exists errors go to stderr; inside the sandbox's
// set-up they go to the launcher through a pipe (set_report_fd) so the worker sees one
// line, "jobserver-launch: <step>: <reason>", and exit status 125.
void set_report_fd(int fd);
_Noreturn void fail(const char *step);
_Noreturn void fail_msg(const char *step, const char *reason);

// EINTR-safe helpers.
int write_all(int fd, const void *data, size_t length);
int write_file(const char *path, const char *text);
ssize_t read_retry(int fd, void *buffer, size_t length);

// supervise.c: the agent's exit, leftovers and resource report.
void kill_children_of_self(void);
void reap_descendants(void);
void apply_rlimits(const struct options *options);
// SIGTERM, SIGINT and SIGHUP (the worker's stop) go to `handler` (or SIG_DFL).
void install_kill_handlers(void (*handler)(int));
// Holds those signals back (across a fork, until the child can be killed); `previous` restores.
void block_kill_signals(sigset_t *previous);

// sandbox.c
int run_sandboxed(struct options *options, struct cgroup_report *cgroup);

// mounts.c: builds the new root and pivots into it (runs inside the new namespaces).
void build_root_and_pivot(const struct options *options);

// seccomp.c
void load_seccomp_filter(void);
// The same filter as a BPF program, for audits and for the bubblewrap baseline benchmark.
void export_seccomp_filter(int fd);

// caps.c
void drop_all_capabilities(void);

// cgroup.c
int cgroup_prepare(const struct cgroup_limits *limits);   // 0 ok / not wanted; -1 failed (errno set)
int cgroup_attach(pid_t pid);
void cgroup_kill_all(void);
void cgroup_finish(struct cgroup_report *report);
const char *cgroup_failure(void);
bool cgroup_enforced(void);

// init.c: PID 1 of the sandbox.
_Noreturn void sandbox_init(const struct options *options, int listen_fd, int status_fd);
int open_forward_listener(unsigned port);

#endif
