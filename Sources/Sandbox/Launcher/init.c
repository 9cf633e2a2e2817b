// PID 1 of the sandbox: starts the agent, reaps every process, forwards the model gateway,
// and when the agent exits, ends the sandbox (the kernel then kills everything left in its
// PID namespace) after telling the launcher how the agent ended.
//
// The forwarder: the agent's ANTHROPIC_BASE_URL is http://127.0.0.1:PORT inside the sandbox's
// own network namespace, which has nothing but loopback. Each connection accepted there is
// relayed byte for byte to the worker's gateway socket, bind-mounted at
// /run/jobserver/gateway.sock. The gateway adds the real credentials; they never come in here.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launcher.h"

#define GATEWAY_PATH "/run/jobserver/gateway.sock"
#define MAX_RELAYS 64
#define RELAY_BUFFER 65536

extern char **environ;

/// One direction of a relayed connection: bytes read from `from`, not yet written to `to`.
struct pipe_half { int from, to; size_t start, end; bool eof; char buffer[RELAY_BUFFER]; };
struct relay { bool used; struct pipe_half up, down; };

static struct relay relays[MAX_RELAYS];

int open_forward_listener(unsigned port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 64) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

static int connect_gateway(void) {
    // Connected blocking (a local connect completes at once or fails), then relayed without.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct sockaddr_un address = { .sun_family = AF_UNIX };
    strncpy(address.sun_path, GATEWAY_PATH, sizeof address.sun_path - 1);
    int result;
    do { result = connect(fd, (struct sockaddr *)&address, sizeof address); } while (result < 0 && errno == EINTR);
    if (result != 0 || fcntl(fd, F_SETFL, O_NONBLOCK) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void close_relay(struct relay *r) {
    close(r->up.from);
    close(r->up.to);
    r->used = false;
}

static void accept_connections(int listen_fd) {
    for (;;) {
        int client = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (client < 0) return;  // EAGAIN: nothing more to accept (or a transient error)
        int gateway = connect_gateway();
        struct relay *slot = NULL;
        for (int i = 0; i < MAX_RELAYS && slot == NULL; i++) if (!relays[i].used) slot = &relays[i];
        if (gateway < 0 || slot == NULL) {
            if (gateway >= 0) close(gateway);
            close(client);
            continue;
        }
        slot->used = true;
        slot->up = (struct pipe_half){ .from = client, .to = gateway };
        slot->down = (struct pipe_half){ .from = gateway, .to = client };
    }
}

/// Moves what it can in one direction without blocking; false when the half is finished.
static void pump(struct pipe_half *h, short revents_from, short revents_to, bool *broken) {
    if (!h->eof && h->end < RELAY_BUFFER && (revents_from & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = read(h->from, h->buffer + h->end, RELAY_BUFFER - h->end);
        if (n > 0) h->end += (size_t)n;
        else if (n == 0 || (errno != EAGAIN && errno != EINTR)) h->eof = true;
    }
    if (h->start < h->end && (revents_to & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = write(h->to, h->buffer + h->start, h->end - h->start);
        if (n > 0) h->start += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR) *broken = true;
    }
    if (h->start == h->end) h->start = h->end = 0;
    if (h->eof && h->start == h->end) shutdown(h->to, SHUT_WR);
}

_Noreturn static void exec_agent(const struct options *o, int exec_fd) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (setsid() < 0) fail("setsid");
    apply_rlimits(o);
    execve(o->program[0], o->program, environ);
    int err = errno;
    (void)write_all(exec_fd, &err, sizeof err);
    _exit(SETUP_FAILED);
}

_Noreturn void sandbox_init(const struct options *o, int listen_fd, int status_fd) {
    // Nothing inside may read this process's memory or attach to it.
    if (prctl(PR_SET_DUMPABLE, 0) != 0) fail("prctl(DUMPABLE)");
    sigset_t handled;
    sigemptyset(&handled);
    sigaddset(&handled, SIGCHLD);
    sigaddset(&handled, SIGTERM);
    sigaddset(&handled, SIGINT);
    sigaddset(&handled, SIGHUP);
    sigaddset(&handled, SIGPIPE);
    sigprocmask(SIG_BLOCK, &handled, NULL);
    int signals = signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signals < 0) fail("signalfd");

    int exec_pipe[2];
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) fail("pipe2");
    pid_t agent = fork();
    if (agent < 0) fail("fork agent");
    if (agent == 0) {
        close(exec_pipe[0]);
        exec_agent(o, exec_pipe[1]);
    }
    close(exec_pipe[1]);
    int exec_errno = 0;
    if (read_retry(exec_pipe[0], &exec_errno, sizeof exec_errno) == (ssize_t)sizeof exec_errno) {
        errno = exec_errno;
        fail("exec agent");
    }
    close(exec_pipe[0]);

    int agent_status = 0;
    bool agent_done = false;
    struct pollfd fds[2 + 2 * MAX_RELAYS];
    while (!agent_done) {
        int n = 0;
        fds[n++] = (struct pollfd){ .fd = signals, .events = POLLIN };
        fds[n++] = (struct pollfd){ .fd = listen_fd, .events = POLLIN };
        for (int i = 0; i < MAX_RELAYS; i++) {
            struct relay *r = &relays[i];
            short up_from = (!r->up.eof && r->up.end < RELAY_BUFFER) ? POLLIN : 0;
            short down_from = (!r->down.eof && r->down.end < RELAY_BUFFER) ? POLLIN : 0;
            fds[n++] = (struct pollfd){ .fd = r->used ? r->up.from : -1,
                                        .events = up_from | (r->down.start < r->down.end ? POLLOUT : 0) };
            fds[n++] = (struct pollfd){ .fd = r->used ? r->down.from : -1,
                                        .events = down_from | (r->up.start < r->up.end ? POLLOUT : 0) };
        }
        if (poll(fds, (nfds_t)n, -1) < 0 && errno != EINTR) fail("poll");
        if (fds[0].revents & POLLIN) {
            struct signalfd_siginfo info;
            while (read(signals, &info, sizeof info) == (ssize_t)sizeof info) {
                if (info.ssi_signo == SIGTERM || info.ssi_signo == SIGINT || info.ssi_signo == SIGHUP) {
                    _exit(128 + (int)info.ssi_signo);  // the kernel kills the rest of the namespace
                }
            }
            int status;
            pid_t pid;
            while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                if (pid == agent) { agent_status = status; agent_done = true; }
            }
        }
        if (fds[1].revents & POLLIN) accept_connections(listen_fd);
        for (int i = 0; i < MAX_RELAYS; i++) {
            struct relay *r = &relays[i];
            if (!r->used) continue;
            short client = fds[2 + 2 * i].revents, gateway = fds[3 + 2 * i].revents;
            bool broken = false;
            pump(&r->up, client, gateway, &broken);
            pump(&r->down, gateway, client, &broken);
            bool up_done = r->up.eof && r->up.start == r->up.end;
            bool down_done = r->down.eof && r->down.start == r->down.end;
            if (broken || (up_done && down_done)) close_relay(r);
        }
    }
    // The agent is gone: say how, then end the namespace (which kills whatever it left).
    char line[32];
    snprintf(line, sizeof line, "status %d\n", agent_status);
    (void)write_all(status_fd, line, strlen(line));
    kill(-1, SIGKILL);
    _exit(0);
}
