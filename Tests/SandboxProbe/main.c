// sandbox-probe: escape attempts for the sandbox tests. Each probe tries one thing a
// sandboxed agent must not be able to do and prints one line, "NAME: RESULT", where RESULT is
// "ok" if the attempt succeeded (a hole), the errno name it failed with (EPERM, ENOSYS, ...),
// or "signal N" if the attempt killed the process. The tests assert the specific result.
//
//   sandbox-probe PROBE [ARGS...]      one probe
//   sandbox-probe all PORT             every probe that needs no other input; PORT is a TCP
//                                      and UDP port the test listens on at the host's loopback
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_alg.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EACCES: return "EACCES";
    case ENOSYS: return "ENOSYS";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case EROFS: return "EROFS";
    case EINVAL: return "EINVAL";
    case ENOTTY: return "ENOTTY";
    case ESRCH: return "ESRCH";
    case EAGAIN: return "EAGAIN";
    case ENOSPC: return "ENOSPC";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EBADF: return "EBADF";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    default: {
        static char buffer[32];
        snprintf(buffer, sizeof buffer, "errno %d", e);
        return buffer;
    }
    }
}

static int report(const char *name, long result) {
    if (result >= 0) printf("%s: ok\n", name);
    else printf("%s: %s\n", name, errno_name(errno));
    fflush(stdout);
    return 0;
}

static int tcp_connect(int family, const char *host, int port) {
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_storage address;
    memset(&address, 0, sizeof address);
    socklen_t length;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&address;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, host, &in->sin_addr);
        length = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&address;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, host, &in6->sin6_addr);
        length = sizeof *in6;
    }
    int result = connect(fd, (struct sockaddr *)&address, length);
    int saved = errno;
    close(fd);
    errno = saved;
    return result;
}

/// Sends `query` by UDP to 127.0.0.1:`port` and waits a second for an answer. Where nothing
/// listens (the sandbox's own loopback), the kernel answers ECONNREFUSED.
static int udp_exchange(int port, const void *query, size_t length) {
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
    struct timeval timeout = { .tv_sec = 1 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&in, sizeof in) != 0 || send(fd, query, length, 0) < 0) return -1;
    char reply[512];
    ssize_t n = recv(fd, reply, sizeof reply, 0);
    int saved = errno;
    close(fd);
    errno = saved == EAGAIN ? ETIMEDOUT : saved;
    return n >= 0 ? 0 : -1;
}

/// A DNS query for "example.invalid" to the resolver a process would use: 127.0.0.1:53.
static int dns_probe(void) {
    static const unsigned char query[] = {
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 7, 'i', 'n', 'v', 'a', 'l', 'i', 'd', 0, 0x00, 0x01, 0x00, 0x01,
    };
    return udp_exchange(53, query, sizeof query);
}

/// The network interfaces this network namespace has, from /proc/net/dev.
static void interfaces(void) {
    FILE *file = fopen("/proc/net/dev", "r");
    printf("interfaces:");
    char line[256];
    for (int n = 0; file != NULL && fgets(line, sizeof line, file) != NULL; n++) {
        char *colon = strchr(line, ':');
        if (n < 2 || colon == NULL) continue;  // two header lines
        *colon = '\0';
        char *name = line;
        while (*name == ' ') name++;
        printf(" %s", name);
    }
    printf("\n");
    if (file != NULL) fclose(file);
}

/// Runs `probe` in a child and reports how it ended: a seccomp kill shows as "signal 31".
static void in_child(const char *name, void (*probe)(void)) {
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        probe();
        _exit(0);
    }
    int status = 0;
    waitpid(child, &status, 0);
    if (WIFSIGNALED(status)) printf("%s: signal %d\n", name, WTERMSIG(status));
    else printf("%s: exited %d\n", name, WEXITSTATUS(status));
    fflush(stdout);
}

static void int80_getpid(void) {
    long result;
    __asm__ volatile("int $0x80" : "=a"(result) : "a"(20) : "memory");  // i386 getpid
    _exit(result > 0 ? 0 : 1);
}

static void socket_family(const char *name, int family, int type) {
    int fd = socket(family, type, 0);
    report(name, fd);
    if (fd >= 0) close(fd);
}

static int run(const char *probe, int port) {
    if (strcmp(probe, "tcp") == 0) return report("tcp", tcp_connect(AF_INET, "127.0.0.1", port));
    if (strcmp(probe, "tcp6") == 0) return report("tcp6", tcp_connect(AF_INET6, "::1", port));
    if (strcmp(probe, "udp") == 0) return report("udp", udp_exchange(port, "probe", 5));
    if (strcmp(probe, "dns") == 0) return report("dns", dns_probe());
    if (strcmp(probe, "interfaces") == 0) { interfaces(); return 0; }
    if (strcmp(probe, "ptrace-init") == 0) return report("ptrace-init", ptrace(PTRACE_ATTACH, 1, NULL, NULL));
    if (strcmp(probe, "init-mem") == 0) return report("init-mem", open("/proc/1/mem", O_RDONLY));
    if (strcmp(probe, "unshare-user") == 0) return report("unshare-user", unshare(CLONE_NEWUSER));
    if (strcmp(probe, "unshare-mount") == 0) return report("unshare-mount", unshare(CLONE_NEWNS));
    if (strcmp(probe, "clone-userns") == 0) {
        long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid == 0) _exit(0);
        if (pid > 0) waitpid((pid_t)pid, NULL, 0);
        return report("clone-userns", pid);
    }
    if (strcmp(probe, "clone3") == 0) return report("clone3", syscall(SYS_clone3, NULL, 0));
    if (strcmp(probe, "mount") == 0) return report("mount", mount("tmpfs", "/tmp", "tmpfs", 0, NULL));
    if (strcmp(probe, "setns") == 0) {
        int fd = open("/proc/self/ns/net", O_RDONLY);
        return report("setns", fd < 0 ? fd : setns(fd, 0));
    }
    if (strcmp(probe, "chroot") == 0) return report("chroot", chroot("/tmp"));
    if (strcmp(probe, "vsock") == 0) { socket_family("vsock", AF_VSOCK, SOCK_STREAM); return 0; }
    if (strcmp(probe, "netlink") == 0) { socket_family("netlink", AF_NETLINK, SOCK_RAW); return 0; }
    if (strcmp(probe, "packet") == 0) { socket_family("packet", AF_PACKET, SOCK_RAW); return 0; }
    if (strcmp(probe, "alg") == 0) { socket_family("alg", AF_ALG, SOCK_SEQPACKET); return 0; }
    if (strcmp(probe, "io_uring") == 0) return report("io_uring", syscall(SYS_io_uring_setup, 1, NULL));
    if (strcmp(probe, "bpf") == 0) return report("bpf", syscall(SYS_bpf, 0, NULL, 0));
    if (strcmp(probe, "perf_event_open") == 0) return report("perf_event_open", syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0));
    if (strcmp(probe, "keyctl") == 0) return report("keyctl", syscall(SYS_keyctl, 0, 0, 0, 0, 0));
    if (strcmp(probe, "userfaultfd") == 0) return report("userfaultfd", syscall(SYS_userfaultfd, 0));
    if (strcmp(probe, "personality") == 0) return report("personality", syscall(SYS_personality, 0x0040000));
    if (strcmp(probe, "tiocsti") == 0) {
        char c = 'x';
        return report("tiocsti", ioctl(STDIN_FILENO, TIOCSTI, &c));
    }
    if (strcmp(probe, "int80") == 0) { in_child("int80", int80_getpid); return 0; }
    fprintf(stderr, "sandbox-probe: unknown probe %s\n", probe);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: sandbox-probe PROBE [PORT] | all PORT\n");
        return 2;
    }
    int port = argc > 2 ? atoi(argv[2]) : 0;
    if (strcmp(argv[1], "all") != 0) return run(argv[1], port);
    static const char *const all[] = {
        "interfaces", "tcp", "tcp6", "udp", "dns", "ptrace-init", "init-mem", "unshare-user",
        "unshare-mount", "clone-userns", "clone3", "mount", "setns", "chroot", "vsock", "netlink",
        "packet", "alg", "io_uring", "bpf", "perf_event_open", "keyctl", "userfaultfd",
        "personality", "tiocsti", "int80",
    };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) run(all[i], port);
    return 0;
}

// See Sources/Sandbox/Launcher/main.c: no Swift runtime in a C executable.
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
