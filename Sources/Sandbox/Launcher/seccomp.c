// The seccomp filter of DESIGN §6, built with libseccomp: allow by default, refuse what a
// coding agent never needs and what has been the way out of sandboxes. Native architecture
// only: a system call of any other ABI (32-bit `int 0x80`, x32) kills the process.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/socket.h>

#include "launcher.h"

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

// Refused with EPERM: namespaces and mounts, tracing other processes, kernel interfaces
// (modules, BPF, perf, keyrings, userfaultfd), and host-wide state (clock, swap, reboot).
static const char *const refused[] = {
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot", "move_mount",
    "open_tree", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
    "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "reboot", "syslog",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "swapon", "swapoff",
    "acct", "quotactl", "quotactl_fd", "lookup_dcookie", "vhangup", "fanotify_init",
    "setdomainname", "sethostname", "nfsservctl", "uselib", "vm86", "vm86old",
    "landlock_create_ruleset", "lsm_set_self_attr",
};

// Refused with ENOSYS, so callers fall back as on kernels without them: clone3 (glibc then
// uses clone, whose flags the filter can see) and io_uring (which bypasses the filter).
static const char *const absent[] = { "clone3", "io_uring_setup", "io_uring_enter", "io_uring_register" };

static void add(scmp_filter_ctx filter, int action, const char *name, unsigned count, const struct scmp_arg_cmp *args) {
    int number = seccomp_syscall_resolve_name(name);
    if (number == __NR_SCMP_ERROR) return;  // not a system call of this architecture
    int rc = seccomp_rule_add_array(filter, action, number, count, args);
    if (rc != 0) {
        errno = -rc;
        fail(name);
    }
}

static scmp_filter_ctx build_filter(void) {
    scmp_filter_ctx filter = seccomp_init(SCMP_ACT_ALLOW);
    if (filter == NULL) fail_msg("seccomp", "seccomp_init failed");
    if (seccomp_attr_set(filter, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS) != 0) fail_msg("seccomp", "bad-arch action");
    if (seccomp_attr_set(filter, SCMP_FLTATR_CTL_NNP, 0) != 0) fail_msg("seccomp", "nnp attribute");

    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) add(filter, SCMP_ACT_ERRNO(EPERM), refused[i], 0, NULL);
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++) add(filter, SCMP_ACT_ERRNO(ENOSYS), absent[i], 0, NULL);

    // clone with any namespace flag.
    static const unsigned long long namespace_flags[] = {
        CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWIPC, CLONE_NEWUTS,
        CLONE_NEWCGROUP, CLONE_NEWTIME,
    };
    for (size_t i = 0; i < sizeof namespace_flags / sizeof namespace_flags[0]; i++) {
        struct scmp_arg_cmp flag = SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]);
        add(filter, SCMP_ACT_ERRNO(EPERM), "clone", 1, &flag);
    }

    // Sockets: UNIX, INET and INET6 only (AF_VSOCK would reach the VM's host, NETLINK the
    // kernel, PACKET raw frames, ALG the kernel crypto API).
    for (unsigned long long family = 0; family <= AF_INET6; family++) {
        if (family == AF_UNIX || family == AF_INET || family == AF_INET6) continue;
        struct scmp_arg_cmp domain = SCMP_A0(SCMP_CMP_EQ, family);
        add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", 1, &domain);
        add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socketpair", 1, &domain);
    }
    struct scmp_arg_cmp above = SCMP_A0(SCMP_CMP_GT, AF_INET6);
    add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", 1, &above);
    add(filter, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socketpair", 1, &above);

    // Faking terminal input for another process, and the Linux console's ioctls.
    static const unsigned long long terminal_requests[] = { TIOCSTI, TIOCLINUX };
    for (size_t i = 0; i < 2; i++) {
        struct scmp_arg_cmp request = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffULL, terminal_requests[i]);
        add(filter, SCMP_ACT_ERRNO(EPERM), "ioctl", 1, &request);
    }

    // personality: the default (0) and the query (0xffffffff) are fine; any other persona
    // (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC, ...) is refused. libseccomp allows one comparison
    // per argument in a rule, so "neither all zeros nor all ones" is written as "some bit is
    // set whose cyclic neighbour is clear", one rule per bit.
    for (unsigned bit = 0; bit < 32; bit++) {
        unsigned long long set = 1ULL << bit, clear = 1ULL << ((bit + 1) % 32);
        struct scmp_arg_cmp persona = SCMP_A0(SCMP_CMP_MASKED_EQ, set | clear, set);
        add(filter, SCMP_ACT_ERRNO(EPERM), "personality", 1, &persona);
    }
    struct scmp_arg_cmp wide = SCMP_A0(SCMP_CMP_GT, 0xffffffffULL);
    add(filter, SCMP_ACT_ERRNO(EPERM), "personality", 1, &wide);

    return filter;
}

void load_seccomp_filter(void) {
    scmp_filter_ctx filter = build_filter();
    int rc = seccomp_load(filter);
    if (rc != 0) { errno = -rc; fail("seccomp_load"); }
    seccomp_release(filter);
}

void export_seccomp_filter(int fd) {
    scmp_filter_ctx filter = build_filter();
    int rc = seccomp_export_bpf(filter, fd);
    if (rc != 0) { errno = -rc; fail("seccomp_export_bpf"); }
    seccomp_release(filter);
}
