// Per-job cgroups: memory, pids and CPU limits for the sandbox's whole process tree, a way to
// kill all of it, and the counters that tell a limit breach (E008) from a crash.
//
// --cgroup-root names the mount point if it is not /sys/fs/cgroup.
// cgroup v2 (one unified hierarchy): a child of the launcher's own cgroup, or of
// --cgroup-parent, a directory delegated to the worker with the memory, pids and cpu
// controllers enabled in its cgroup.subtree_control.
// cgroup v1 (a hierarchy per controller, as on this project's build machines): a child of the
// launcher's own cgroup in each of the memory, pids and cpu hierarchies.
//
// Modes: "required" fails the launch when the limits cannot be set (a root worker's default),
// "auto" runs without them where nothing is delegated (an unprivileged worker's default; its
// rlimits still apply), "off" never uses cgroups.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "launcher.h"

static const struct cgroup_limits *current;

/// Where the cgroup filesystem is mounted: /sys/fs/cgroup, or --cgroup-root (on a hybrid
/// host, /sys/fs/cgroup/unified selects its v2 hierarchy).
static const char *cgroup_root(void) {
    return current != NULL && current->root != NULL ? current->root : "/sys/fs/cgroup";
}
#define CGROUP2_SUPER_MAGIC 0x63677270

enum controller { MEMORY, PIDS, CPU, CONTROLLERS };
static const char *const controller_names[CONTROLLERS] = { "memory", "pids", "cpu" };

static struct {
    bool active;
    bool v2;
    char dirs[CONTROLLERS][PATH_MAX];  // v2: only dirs[0] is used
    char failure[PATH_MAX + 128];
} state;

bool cgroup_enforced(void) { return state.active; }

const char *cgroup_failure(void) { return state.failure[0] != '\0' ? state.failure : "unknown"; }

/// Which controllers a job's cgroup uses. A job's cgroup in the cpu controller is also a
/// scheduling group: the sandbox's processes together get one share, as much as a single host
/// process; without a CPU limit that is only a penalty, so cpu is used only for a limit. v1
/// always uses memory and pids (its kill and report go through them); v2 kills through the
/// group itself, so it enables only the controllers with a limit.
static bool wanted(int controller, const struct cgroup_limits *limits) {
    switch (controller) {
    case MEMORY: return !state.v2 || limits->memory_bytes > 0;
    case PIDS: return !state.v2 || limits->pids > 0;
    default: return limits->cpu_millis > 0;
    }
}

static int failed(const char *what, const char *path) {
    snprintf(state.failure, sizeof state.failure, "%s %s: %s", what, path, strerror(errno));
    return -1;
}

static int write_value(const char *dir, const char *file, const char *value) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (write_file(path, value) != 0) return failed("write", path);
    return 0;
}

static bool file_exists(const char *dir, const char *file) {
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    return access(path, F_OK) == 0;
}

/// The value after `key` in a "key value" counters file, or -1.
static long long read_counter(const char *dir, const char *file, const char *key) {
    char path[PATH_MAX + 64], text[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read_retry(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0) return -1;
    text[n] = '\0';
    if (key == NULL) return strtoll(text, NULL, 10);
    size_t length = strlen(key);
    for (char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, key, length) == 0 && line[length] == ' ') return strtoll(line + length + 1, NULL, 10);
        char *next = strchr(line, '\n');
        line = next != NULL ? next + 1 : NULL;
    }
    return -1;
}

/// The launcher's own cgroup path in the hierarchy of `controller` ("" for v2's).
static int own_cgroup(const char *controller, char *out, size_t size) {
    FILE *file = fopen("/proc/self/cgroup", "re");
    if (file == NULL) return failed("read", "/proc/self/cgroup");
    char line[PATH_MAX + 64];
    int found = -1;
    while (found != 0 && fgets(line, sizeof line, file) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char *first = strchr(line, ':');
        char *second = first != NULL ? strchr(first + 1, ':') : NULL;
        if (second == NULL) continue;
        *second = '\0';
        char *list = first + 1;
        bool match = controller[0] == '\0' ? list[0] == '\0' : false;
        for (char *save = NULL, *name = strtok_r(list, ",", &save); name != NULL && !match; name = strtok_r(NULL, ",", &save)) {
            match = strcmp(name, controller) == 0;
        }
        if (match) {
            snprintf(out, size, "%s", second + 1);
            found = 0;
        }
    }
    fclose(file);
    if (found != 0) {
        errno = ENOENT;
        return failed("no cgroup for controller", controller[0] != '\0' ? controller : "(v2)");
    }
    return 0;
}

/// Removes the groups in `parent` that launchers killed together with their worker left
/// behind (SIGKILL gave them no chance to clean up): named `jobserver-NAME.pPID` for a launcher
/// PID that no longer exists, and empty. A live PID (even a reused one) or a PID this process
/// may not signal is left alone, and rmdir refuses a group that still holds a process or a
/// child, so a live job's group is never touched.
static void sweep_stale_groups(const char *parent) {
    DIR *dir = opendir(parent);
    if (dir == NULL) return;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strncmp(entry->d_name, "jobserver-", 10) != 0) continue;
        const char *mark = strrchr(entry->d_name, '.');
        if (mark == NULL || mark[1] != 'p' || mark[2] == '\0') continue;
        char *end = NULL;
        long pid = strtol(mark + 2, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        char path[PATH_MAX + 512];
        snprintf(path, sizeof path, "%s/%s", parent, entry->d_name);
        (void)rmdir(path);
    }
    closedir(dir);
}

/// The job's group `jobserver-NAME.pPID` (PID: this launcher) under `parent`, after sweeping
/// the stale ones there.
static int make_group(char *dir, size_t size, const char *parent, const char *name) {
    sweep_stale_groups(parent);
    snprintf(dir, size, "%s/jobserver-%s.p%ld", parent, name, (long)getpid());
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return failed("mkdir", dir);
    return 0;
}

static int prepare_v2(const struct cgroup_limits *limits) {
    char parent[PATH_MAX], own[PATH_MAX];
    const char *configured = limits->parent;
    if (configured != NULL && configured[0] != '\0') {
        snprintf(parent, sizeof parent, "%s", configured);
    } else {
        if (own_cgroup("", own, sizeof own) != 0) return -1;
        snprintf(parent, sizeof parent, "%s%s", cgroup_root(), own);
    }
    // Enable the controllers for children; refused (EBUSY) where the parent also holds
    // processes and is not the root: then the operator must delegate a directory.
    char enabled[256] = "";
    int fd = -1;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/cgroup.subtree_control", parent);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0) {
        ssize_t n = read_retry(fd, enabled, sizeof enabled - 1);
        enabled[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    for (int c = 0; c < CONTROLLERS; c++) {
        if (!wanted(c, limits) || strstr(enabled, controller_names[c]) != NULL) continue;
        char change[32];
        snprintf(change, sizeof change, "+%s", controller_names[c]);
        if (write_file(path, change) != 0) return failed("enable controller in", path);
    }
    if (make_group(state.dirs[0], sizeof state.dirs[0], parent, limits->name) != 0) return -1;
    state.active = true;
    char value[64];
    if (limits->memory_bytes > 0) {
        snprintf(value, sizeof value, "%llu", limits->memory_bytes);
        if (write_value(state.dirs[0], "memory.max", value) != 0) return -1;
        if (file_exists(state.dirs[0], "memory.swap.max") && write_value(state.dirs[0], "memory.swap.max", "0") != 0) return -1;
    }
    if (limits->pids > 0) {
        snprintf(value, sizeof value, "%llu", limits->pids);
        if (write_value(state.dirs[0], "pids.max", value) != 0) return -1;
    }
    if (limits->cpu_millis > 0) {
        snprintf(value, sizeof value, "%llu 100000", limits->cpu_millis * 100);
        if (write_value(state.dirs[0], "cpu.max", value) != 0) return -1;
    }
    return 0;
}

static int prepare_v1(const struct cgroup_limits *limits) {
    for (int c = 0; c < CONTROLLERS; c++) {
        if (!wanted(c, limits)) continue;
        char own[PATH_MAX], parent[PATH_MAX + 64];
        if (own_cgroup(controller_names[c], own, sizeof own) != 0) return -1;
        snprintf(parent, sizeof parent, "%s/%s%s", cgroup_root(), controller_names[c], own);
        if (make_group(state.dirs[c], sizeof state.dirs[c], parent, limits->name) != 0) return -1;
        state.active = true;
    }
    char value[64];
    if (limits->memory_bytes > 0) {
        snprintf(value, sizeof value, "%llu", limits->memory_bytes);
        if (write_value(state.dirs[MEMORY], "memory.limit_in_bytes", value) != 0) return -1;
        // Without swap accounting there is nothing more to do; with it, forbid swap too.
        if (file_exists(state.dirs[MEMORY], "memory.memsw.limit_in_bytes")
            && write_value(state.dirs[MEMORY], "memory.memsw.limit_in_bytes", value) != 0) return -1;
    }
    if (limits->pids > 0) {
        snprintf(value, sizeof value, "%llu", limits->pids);
        if (write_value(state.dirs[PIDS], "pids.max", value) != 0) return -1;
    }
    if (limits->cpu_millis > 0) {
        if (write_value(state.dirs[CPU], "cpu.cfs_period_us", "100000") != 0) return -1;
        snprintf(value, sizeof value, "%llu", limits->cpu_millis * 100);
        if (write_value(state.dirs[CPU], "cpu.cfs_quota_us", value) != 0) return -1;
    }
    return 0;
}

int cgroup_prepare(const struct cgroup_limits *limits) {
    memset(&state, 0, sizeof state);
    current = limits;
    if (limits->mode == CGROUP_OFF) return 0;
    struct statfs info;
    if (statfs(cgroup_root(), &info) != 0) {
        failed("statfs", cgroup_root());
    } else {
        state.v2 = info.f_type == CGROUP2_SUPER_MAGIC;
        if ((state.v2 ? prepare_v2(limits) : prepare_v1(limits)) == 0) return 0;
    }
    // Undo what was made; in auto mode run on without cgroup limits.
    struct cgroup_report ignored;
    char failure[sizeof state.failure];
    memcpy(failure, state.failure, sizeof failure);
    cgroup_finish(&ignored);
    memcpy(state.failure, failure, sizeof failure);
    return limits->mode == CGROUP_REQUIRED ? -1 : 0;
}

int cgroup_attach(pid_t pid) {
    if (!state.active) return 0;
    char value[32];
    snprintf(value, sizeof value, "%d", (int)pid);
    for (int c = 0; c < (state.v2 ? 1 : CONTROLLERS); c++) {
        if (state.dirs[c][0] == '\0') continue;
        if (write_value(state.dirs[c], "cgroup.procs", value) != 0) return -1;
    }
    return 0;
}

/// Kills every process in the job's cgroup until it is empty.
void cgroup_kill_all(void) {
    if (!state.active) return;
    const char *dir = state.dirs[0];
    if (state.v2 && write_value(dir, "cgroup.kill", "1") == 0) return;
    for (int round = 0; round < 1000; round++) {
        char path[PATH_MAX + 64], text[8192];
        snprintf(path, sizeof path, "%s/cgroup.procs", dir);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        ssize_t n = read_retry(fd, text, sizeof text - 1);
        close(fd);
        if (n <= 0) return;
        text[n] = '\0';
        for (char *save = NULL, *line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
            kill((pid_t)atoi(line), SIGKILL);
        }
        usleep(1000);
    }
}

void cgroup_finish(struct cgroup_report *report) {
    memset(report, 0, sizeof *report);
    if (!state.active) return;
    report->enforced = true;
    if (state.v2) {
        report->memory_limit_hit = read_counter(state.dirs[0], "memory.events", "oom_kill") > 0;
        report->pids_limit_hit = read_counter(state.dirs[0], "pids.events", "max") > 0;
        report->peak_memory_bytes = read_counter(state.dirs[0], "memory.peak", NULL);
    } else {
        report->memory_limit_hit = read_counter(state.dirs[MEMORY], "memory.oom_control", "oom_kill") > 0;
        report->pids_limit_hit = read_counter(state.dirs[PIDS], "pids.events", "max") > 0;
        report->peak_memory_bytes = read_counter(state.dirs[MEMORY], "memory.max_usage_in_bytes", NULL);
    }
    for (int c = 0; c < (state.v2 ? 1 : CONTROLLERS); c++) {
        if (state.dirs[c][0] == '\0') continue;
        // A cgroup whose last process just died can be busy for a moment.
        for (int attempt = 0; attempt < 200 && rmdir(state.dirs[c]) != 0 && errno == EBUSY; attempt++) usleep(1000);
    }
    state.active = false;
}
