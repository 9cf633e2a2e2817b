// jobserver-launch: the process that sits between the worker and an agent.
//
// It exists because what must happen between fork and exec cannot be expressed with
// swift-subprocess on Linux: namespaces, the new root, capabilities, seccomp, cgroups, the
// parent-death signal, rlimits, and reaping every descendant.
//
//   jobserver-launch [options] -- PROGRAM [ARGS...]
//     --cwd DIR               working directory of the agent (inside the sandbox in sandbox mode)
//     --rusage-file PATH      write {"cpu_ms","max_rss_bytes","exit_code","signal",...} here at the end
//     --rlimit NAME=VALUE     as, nproc, nofile, cpu, fsize, core (repeatable)
//   Sandbox mode (DESIGN §6; the steps are in sandbox.c):
//     --sandbox
//     --map-uid UID --map-gid GID   the unprivileged host ids the sandbox's uid/gid 1000 map to
//                                   (required when root; the launcher's own ids otherwise)
//     --ro-bind SRC DST, --bind SRC DST   host path SRC visible at DST, read-only / read-write
//     --tmpfs DST BYTES             a size-capped tmpfs at DST
//     --gateway-socket PATH --gateway-port PORT
//                                   127.0.0.1:PORT inside forwards to the Unix socket PATH outside
//     --hostname NAME
//     --cgroup off|auto|required    cgroup limits: none, where delegated, or fail without them
//     --cgroup-name NAME --memory BYTES --pids N --cpu-millis N
//     --cgroup-root DIR (default /sys/fs/cgroup) --cgroup-parent DIR (v2: the delegated directory)
//   jobserver-launch --export-seccomp   writes the sandbox's seccomp filter (BPF) to stdout
//
// Contract with the worker:
//   - SIGTERM/SIGINT/SIGHUP to the launcher kills the agent's whole process tree at once.
//   - If the worker dies, the kernel kills the launcher and the agent (PR_SET_PDEATHSIG).
//   - When the agent exits, whatever it left running is killed and reaped.
//   - Exit status: the agent's exit code, 128+signal if it was killed, 125 if set-up failed
//     (with a one-line reason on stderr prefixed "jobserver-launch:"). In sandbox mode every
//     isolation step that fails is a set-up failure: nothing runs.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher.h"

static volatile sig_atomic_t agent_group = 0;

static void kill_agent_group(int sig) {
    (void)sig;
    if (agent_group > 0) kill(-agent_group, SIGKILL);
}

static int rlimit_resource(const char *name) {
    if (strcmp(name, "as") == 0) return RLIMIT_AS;
    if (strcmp(name, "nproc") == 0) return RLIMIT_NPROC;
    if (strcmp(name, "nofile") == 0) return RLIMIT_NOFILE;
    if (strcmp(name, "cpu") == 0) return RLIMIT_CPU;
    if (strcmp(name, "fsize") == 0) return RLIMIT_FSIZE;
    if (strcmp(name, "core") == 0) return RLIMIT_CORE;
    return -1;
}

static unsigned long long parse_number(const char *text, const char *option) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') fail_msg(option, "not a number");
    return value;
}

static void parse_options(int argc, char **argv, struct options *o) {
    memset(o, 0, sizeof *o);
    o->cgroup.mode = CGROUP_OFF;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) { i++; break; }
        if (strcmp(a, "--sandbox") == 0) { o->sandbox = true; continue; }
        if (i + 1 >= argc) fail_msg(a, "option without a value");
        if (strcmp(a, "--cwd") == 0) {
            o->cwd = argv[++i];
        } else if (strcmp(a, "--rusage-file") == 0) {
            o->rusage_file = argv[++i];
        } else if (strcmp(a, "--rlimit") == 0) {
            char *spec = argv[++i];
            char *eq = strchr(spec, '=');
            if (eq == NULL || o->nlimits == MAX_LIMITS) fail_msg("--rlimit", "bad limit");
            *eq = '\0';
            int resource = rlimit_resource(spec);
            if (resource < 0) fail_msg("--rlimit", "unknown limit");
            o->limits[o->nlimits].resource = resource;
            o->limits[o->nlimits].value = (rlim_t)parse_number(eq + 1, "--rlimit");
            o->nlimits++;
        } else if (strcmp(a, "--map-uid") == 0) {
            o->map_uid = (uid_t)parse_number(argv[++i], a);
            o->map_uid_set = true;
        } else if (strcmp(a, "--map-gid") == 0) {
            o->map_gid = (gid_t)parse_number(argv[++i], a);
        } else if (strcmp(a, "--ro-bind") == 0 || strcmp(a, "--bind") == 0) {
            if (i + 2 >= argc || o->nbinds == MAX_BINDS) fail_msg(a, "needs SRC and DST");
            o->binds[o->nbinds++] = (struct bind){ argv[i + 1], argv[i + 2], strcmp(a, "--bind") == 0, -1 };
            i += 2;
        } else if (strcmp(a, "--tmpfs") == 0) {
            if (i + 2 >= argc || o->ntmpfs == 8) fail_msg(a, "needs DST and BYTES");
            o->tmpfs[o->ntmpfs++] = (struct tmpfs){ argv[i + 1], parse_number(argv[i + 2], a) };
            i += 2;
        } else if (strcmp(a, "--gateway-socket") == 0) {
            o->gateway_socket = argv[++i];
        } else if (strcmp(a, "--gateway-port") == 0) {
            unsigned long long port = parse_number(argv[++i], a);
            if (port < 1024 || port > 65535) fail_msg(a, "must be 1024-65535");
            o->gateway_port = (unsigned)port;
        } else if (strcmp(a, "--hostname") == 0) {
            o->hostname = argv[++i];
        } else if (strcmp(a, "--cgroup") == 0) {
            const char *mode = argv[++i];
            if (strcmp(mode, "off") == 0) o->cgroup.mode = CGROUP_OFF;
            else if (strcmp(mode, "auto") == 0) o->cgroup.mode = CGROUP_AUTO;
            else if (strcmp(mode, "required") == 0) o->cgroup.mode = CGROUP_REQUIRED;
            else fail_msg(a, "must be off, auto or required");
        } else if (strcmp(a, "--cgroup-name") == 0) {
            o->cgroup.name = argv[++i];
            if (strchr(o->cgroup.name, '/') != NULL || o->cgroup.name[0] == '.') fail_msg(a, "bad name");
        } else if (strcmp(a, "--cgroup-root") == 0 || strcmp(a, "--cgroup-parent") == 0) {
            const char *path = argv[++i];
            if (path[0] != '/') fail_msg(a, "must be an absolute path");
            if (strcmp(a, "--cgroup-root") == 0) o->cgroup.root = path;
            else o->cgroup.parent = path;
        } else if (strcmp(a, "--memory") == 0) {
            o->cgroup.memory_bytes = parse_number(argv[++i], a);
        } else if (strcmp(a, "--pids") == 0) {
            o->cgroup.pids = parse_number(argv[++i], a);
        } else if (strcmp(a, "--cpu-millis") == 0) {
            o->cgroup.cpu_millis = parse_number(argv[++i], a);
        } else {
            fail_msg(a, "unknown option");
        }
    }
    if (i >= argc) fail_msg("usage", "no program to run");
    o->program = &argv[i];
    if (o->cgroup.mode != CGROUP_OFF && o->cgroup.name == NULL) fail_msg("--cgroup", "needs --cgroup-name");
}

/// The resource report the worker reads after the agent ends.
static void write_report(const char *path, int status, const struct cgroup_report *cgroup) {
    if (path == NULL) return;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    getrusage(RUSAGE_CHILDREN, &usage);
    long long cpu_ms = (long long)usage.ru_utime.tv_sec * 1000 + usage.ru_utime.tv_usec / 1000
                     + (long long)usage.ru_stime.tv_sec * 1000 + usage.ru_stime.tv_usec / 1000;
    long long max_rss = (long long)usage.ru_maxrss * 1024;
    if (cgroup != NULL && cgroup->peak_memory_bytes > max_rss) max_rss = cgroup->peak_memory_bytes;
    const char *limit = "null";
    if (cgroup != NULL && cgroup->memory_limit_hit) limit = "\"memory\"";
    else if (cgroup != NULL && cgroup->pids_limit_hit) limit = "\"pids\"";
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int signal_number = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    dprintf(fd, "{\"cpu_ms\":%lld,\"max_rss_bytes\":%lld,\"exit_code\":%d,\"signal\":%d,\"limit\":%s,\"cgroup\":%s}\n",
            cpu_ms, max_rss, exit_code, signal_number, limit,
            cgroup != NULL && cgroup->enforced ? "true" : "false");
    close(fd);
}

static int exit_status_of(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return SETUP_FAILED;
}

/// Arms the parent-death signal and checks the parent did not die before it was armed.
static void die_with_parent(pid_t parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl(PDEATHSIG)");
    if (getppid() != parent) fail_msg("start", "worker already gone");
}

static int run_direct(const struct options *options) {
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) fail("prctl(CHILD_SUBREAPER)");
    install_kill_handlers(kill_agent_group);

    // Block the signals until the child has its own group, so a cancel that races the fork
    // still reaches it.
    sigset_t previous;
    block_kill_signals(&previous);

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) fail("pipe2");
    pid_t parent = getpid();
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        close(ready[0]);
        sigprocmask(SIG_SETMASK, &previous, NULL);
        install_kill_handlers(SIG_DFL);
        if (setpgid(0, 0) != 0) fail("setpgid");
        die_with_parent(parent);
        apply_rlimits(options);
        if (options->cwd != NULL && chdir(options->cwd) != 0) fail("chdir");
        execv(options->program[0], options->program);
        // Tell the launcher exec failed, distinct from the agent exiting 125 itself.
        int err = errno;
        (void)write_all(ready[1], &err, sizeof err);
        fail("exec");
    }
    close(ready[1]);
    setpgid(child, child);  // also from the parent, so the group exists before we kill it
    agent_group = child;
    sigprocmask(SIG_SETMASK, &previous, NULL);

    int exec_errno = 0;
    ssize_t got = read_retry(ready[0], &exec_errno, sizeof exec_errno);
    close(ready[0]);

    int status = 0;
    pid_t waited;
    do { waited = waitpid(child, &status, 0); } while (waited < 0 && errno == EINTR);

    // The agent is gone: nothing it started may outlive it.
    kill(-child, SIGKILL);
    reap_descendants();
    if (got > 0) _exit(SETUP_FAILED);  // the child already said why
    write_report(options->rusage_file, status, NULL);
    return exit_status_of(status);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--export-seccomp") == 0) {
        export_seccomp_filter(STDOUT_FILENO);
        return 0;
    }
    // The worker's stop signals must reach this process whatever mask it inherited (a
    // spawning runtime may leave them blocked).
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGHUP);
    sigprocmask(SIG_UNBLOCK, &stop_signals, NULL);
    struct options options;
    parse_options(argc, argv, &options);
    die_with_parent(getppid());
    if (options.sandbox) {
        struct cgroup_report cgroup;
        memset(&cgroup, 0, sizeof cgroup);
        int status = run_sandboxed(&options, &cgroup);
        write_report(options.rusage_file, status, &cgroup);
        return exit_status_of(status);
    }
    return run_direct(&options);
}

// SwiftPM links every executable with swiftc, whose start-up object registers the image with
// the Swift runtime through these functions. This program has no Swift code: answering the
// calls here lets the linker (--as-needed) drop libswiftCore and libstdc++, whose loading would
// otherwise cost milliseconds on every job start.
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
