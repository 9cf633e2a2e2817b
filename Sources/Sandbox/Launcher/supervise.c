// What the launcher does around the agent in both modes: rlimits before exec, and after the
// agent exits, killing and reaping whatever it left behind.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher.h"

// Kills every remaining child. As a subreaper the launcher inherits orphans, including
// ones that left the agent's process group with setsid(); they are found as our children in
// /proc and killed until none is left.
void kill_children_of_self(void) {
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
        ssize_t n = read_retry(fd, buffer, sizeof buffer - 1);
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

void reap_descendants(void) {
    for (int round = 0; round < 1000; round++) {
        pid_t reaped;
        while ((reaped = waitpid(-1, NULL, WNOHANG)) > 0) {}
        if (reaped < 0 && errno == ECHILD) return;
        kill_children_of_self();
        usleep(2000);
    }
}

void apply_rlimits(const struct options *options) {
    for (int l = 0; l < options->nlimits; l++) {
        struct rlimit rl = { options->limits[l].value, options->limits[l].value };
        if (setrlimit(options->limits[l].resource, &rl) != 0) fail("setrlimit");
    }
}

void install_kill_handlers(void (*handler)(int)) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = handler;
    sigemptyset(&action.sa_mask);
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGHUP, &action, NULL);
}

void block_kill_signals(sigset_t *previous) {
    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGHUP);
    sigprocmask(SIG_BLOCK, &block, previous);
}
