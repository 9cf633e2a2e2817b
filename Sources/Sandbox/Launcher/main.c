// jobserver-launch: the process that sits between the worker and an agent.
//
// It exists because what must happen between fork and exec cannot be expressed with
// swift-subprocess on Linux: the parent-death signal, a process group of the agent's own,
// rlimits, and reaping every descendant to account CPU and memory for the whole tree.
//
//   jobserver-launch [options] -- PROGRAM [ARGS...]
//     --cwd DIR               working directory of the agent
//     --rusage-file PATH      write {"cpu_ms","max_rss_bytes","exit_code","signal"} here at the end
//     --rlimit NAME=VALUE     as, nproc, nofile, cpu, fsize, core (repeatable)
//
// Contract with the worker:
//   - SIGTERM/SIGINT/SIGHUP to the launcher kills the agent's whole process group at once.
//   - If the worker dies, the kernel kills the launcher and the agent (PR_SET_PDEATHSIG).
//   - When the agent exits, whatever it left running in its group is killed and reaped.
//   - Exit status: the agent's exit code, 128+signal if it was killed, 125 if set-up failed
//     (with a one-line reason on stderr prefixed "jobserver-launch:").
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define SETUP_FAILED 125

static volatile sig_atomic_t agent_group = 0;

static void fail(const char *what) {
    fprintf(stderr, "jobserver-launch: %s: %s\n", what, strerror(errno));
    _exit(SETUP_FAILED);
}

static void fail_msg(const char *what) {
    fprintf(stderr, "jobserver-launch: %s\n", what);
    _exit(SETUP_FAILED);
}

static void kill_agent_group(int sig) {
    (void)sig;
    if (agent_group > 0) kill(-agent_group, SIGKILL);
}

// Kills and reaps every remaining descendant. As a subreaper the launcher inherits orphans,
// including ones that left the agent's process group with setsid(); they are found as our
// children in /proc and killed until none is left.
static void kill_children_of_self(void) {
    DIR *proc = opendir("/proc");
    if (proc == NULL) return;
    pid_t self = getpid();
    struct dirent *entry;
    while ((entry = readdir(proc)) != NULL) {
        char *end = NULL;
        long pid = strtol(entry->d_name, &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        char path[64], buffer[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, buffer, sizeof buffer - 1);
        close(fd);
        if (n <= 0) continue;
        buffer[n] = '\0';
        char *paren = strrchr(buffer, ')');
        if (paren == NULL) continue;
        char state;
        long ppid;
        if (sscanf(paren + 1, " %c %ld", &state, &ppid) == 2 && ppid == self) kill((pid_t)pid, SIGKILL);
    }
    closedir(proc);
}

static void reap_descendants(void) {
    for (int round = 0; round < 1000; round++) {
        pid_t reaped;
        while ((reaped = waitpid(-1, NULL, WNOHANG)) > 0) {}
        if (reaped < 0 && errno == ECHILD) return;
        kill_children_of_self();
        usleep(2000);
    }
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

struct limit { int resource; rlim_t value; };

static void write_rusage(const char *path, int status) {
    if (path == NULL) return;
    struct rusage usage;
    memset(&usage, 0, sizeof usage);
    getrusage(RUSAGE_CHILDREN, &usage);
    long long cpu_ms = (long long)usage.ru_utime.tv_sec * 1000 + usage.ru_utime.tv_usec / 1000
                     + (long long)usage.ru_stime.tv_sec * 1000 + usage.ru_stime.tv_usec / 1000;
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int signal_number = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return;
    dprintf(fd, "{\"cpu_ms\":%lld,\"max_rss_bytes\":%lld,\"exit_code\":%d,\"signal\":%d}\n",
            cpu_ms, (long long)usage.ru_maxrss * 1024, exit_code, signal_number);
    close(fd);
}

int main(int argc, char **argv) {
    const char *cwd = NULL;
    const char *rusage_file = NULL;
    struct limit limits[16];
    int nlimits = 0;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) { i++; break; }
        if (i + 1 >= argc) fail_msg("option without a value");
        if (strcmp(argv[i], "--cwd") == 0) {
            cwd = argv[++i];
        } else if (strcmp(argv[i], "--rusage-file") == 0) {
            rusage_file = argv[++i];
        } else if (strcmp(argv[i], "--rlimit") == 0) {
            char *spec = argv[++i];
            char *eq = strchr(spec, '=');
            if (eq == NULL || nlimits == 16) fail_msg("bad --rlimit");
            *eq = '\0';
            int resource = rlimit_resource(spec);
            char *end = NULL;
            errno = 0;
            unsigned long long value = strtoull(eq + 1, &end, 10);
            if (resource < 0 || errno != 0 || end == eq + 1 || *end != '\0') fail_msg("bad --rlimit");
            limits[nlimits].resource = resource;
            limits[nlimits].value = (rlim_t)value;
            nlimits++;
        } else {
            fail_msg("unknown option");
        }
    }
    if (i >= argc) fail_msg("no program to run");

    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl(PDEATHSIG)");
    if (getppid() != parent) fail_msg("worker already gone");
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) fail("prctl(CHILD_SUBREAPER)");

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = kill_agent_group;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);

    // Block the signals until the child has its own group, so a cancel that races the fork
    // still reaches it.
    sigset_t block, previous;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, &previous);

    int ready[2];
    if (pipe2(ready, O_CLOEXEC) != 0) fail("pipe2");
    pid_t child = fork();
    if (child < 0) fail("fork");
    if (child == 0) {
        close(ready[0]);
        sigprocmask(SIG_SETMASK, &previous, NULL);
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        if (setpgid(0, 0) != 0) fail("setpgid");
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("prctl(PDEATHSIG) in child");
        for (int l = 0; l < nlimits; l++) {
            struct rlimit rl = { limits[l].value, limits[l].value };
            if (setrlimit(limits[l].resource, &rl) != 0) fail("setrlimit");
        }
        if (cwd != NULL && chdir(cwd) != 0) fail("chdir");
        execv(argv[i], &argv[i]);
        // Tell the launcher exec failed, distinct from the agent exiting 125 itself.
        int err = errno;
        ssize_t ignored = write(ready[1], &err, sizeof err);
        (void)ignored;
        fail("exec");
    }
    close(ready[1]);
    setpgid(child, child);  // also from the parent, so the group exists before we kill it
    agent_group = child;
    sigprocmask(SIG_SETMASK, &previous, NULL);

    int exec_errno = 0;
    ssize_t got;
    do { got = read(ready[0], &exec_errno, sizeof exec_errno); } while (got < 0 && errno == EINTR);
    close(ready[0]);

    int status = 0;
    pid_t waited;
    do { waited = waitpid(child, &status, 0); } while (waited < 0 && errno == EINTR);

    // The agent is gone: nothing it started may outlive it.
    kill(-child, SIGKILL);
    reap_descendants();
    if (got > 0) _exit(SETUP_FAILED);  // the child already said why
    write_rusage(rusage_file, status);
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return SETUP_FAILED;
}

// SwiftPM links every executable with swiftc, whose start-up object registers the image with
// the Swift runtime through these functions. This program has no Swift code: answering the
// calls here lets the linker (--as-needed) drop libswiftCore and libstdc++, whose loading would
// otherwise cost milliseconds on every job start.
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
