// Error reporting and EINTR-safe I/O shared by every part of the launcher.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "launcher.h"

static int report_fd = -1;

void set_report_fd(int fd) { report_fd = fd; }

_Noreturn void fail_msg(const char *step, const char *reason) {
    char line[512];
    int n = snprintf(line, sizeof line, "jobserver-launch: %s: %s\n", step, reason);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    if (report_fd >= 0) (void)write_all(report_fd, line, (size_t)n);
    else (void)write_all(STDERR_FILENO, line, (size_t)n);
    _exit(SETUP_FAILED);
}

_Noreturn void fail(const char *step) { fail_msg(step, strerror(errno)); }

int write_all(int fd, const void *data, size_t length) {
    const char *p = data;
    while (length > 0) {
        ssize_t n = write(fd, p, length);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += n;
        length -= (size_t)n;
    }
    return 0;
}

ssize_t read_retry(int fd, void *buffer, size_t length) {
    ssize_t n;
    do { n = read(fd, buffer, length); } while (n < 0 && errno == EINTR);
    return n;
}

int write_file(const char *path, const char *text) {
    int fd;
    do { fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW); } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    int result = write_all(fd, text, strlen(text));
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}
