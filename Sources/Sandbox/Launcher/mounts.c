// The sandbox's filesystem (DESIGN §6): a new root on tmpfs holding read-only binds of the
// system directories, a curated /etc, the binds the worker asks for (the workspace read-write,
// the agent binary read-only), size-capped tmpfs mounts, a minimal /dev and an own /proc.
// The host's filesystem is then detached: nothing else of it is reachable.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "launcher.h"

#define OLD "/oldroot"
#define NEW "/newroot"

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
struct jobserver_mount_attr { unsigned long long attr_set, attr_clr, propagation, userns_fd; };

// Host paths that become read-only binds of the same name when they exist.
static const char *const system_dirs[] = { "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32" };

// What of the host's /etc the tools inside need: the dynamic linker's cache, alternatives
// (awk, editors), certificates, time zone, MIME and service names. Nothing with accounts,
// passwords, keys or host configuration; passwd, group, hosts and the resolver are generated.
static const char *const etc_entries[] = {
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
    "ca-certificates.conf", "localtime", "timezone", "mime.types", "protocols", "services",
    "bash.bashrc", "profile", "inputrc", "terminfo", "gai.conf", "host.conf", "debian_version",
    "os-release", "magic", "mke2fs.conf", "gitconfig", "vim", "perl",
};

static const struct { const char *name; const char *text; } generated_etc[] = {
    { "passwd", "root:x:0:0:root:/root:/usr/sbin/nologin\n"
                "agent:x:1000:1000:agent:/home/agent:/bin/bash\n"
                "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n" },
    { "group", "root:x:0:\nagent:x:1000:\nnogroup:x:65534:\n" },
    { "hosts", "127.0.0.1\tlocalhost sandbox\n::1\tlocalhost ip6-localhost\n" },
    { "hostname", "sandbox\n" },
    // No nameserver: the sandbox has no network but the gateway forwarder.
    { "resolv.conf", "# no DNS inside the sandbox\n" },
    { "nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n" },
};

static void path_join(char *out, const char *root, const char *path) {
    int n = snprintf(out, PATH_MAX, "%s%s%s", root, path[0] == '/' ? "" : "/", path);
    if (n < 0 || n >= PATH_MAX) fail_msg("path", "too long");
}

static void make_dirs(const char *path, mode_t mode) {
    char buffer[PATH_MAX];
    snprintf(buffer, sizeof buffer, "%s", path);
    for (char *p = buffer + 1; *p != '\0'; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buffer, 0755) != 0 && errno != EEXIST) fail(buffer);
        *p = '/';
    }
    if (mkdir(buffer, mode) != 0 && errno != EEXIST) fail(buffer);
}

static void make_file(const char *path, mode_t mode) {
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", path);
    char *slash = strrchr(parent, '/');
    if (slash != NULL && slash != parent) {
        *slash = '\0';
        make_dirs(parent, 0755);
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) fail(path);
    close(fd);
}

static void write_new_file(const char *path, const char *text) {
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) fail(path);
    if (write_all(fd, text, strlen(text)) != 0) fail(path);
    close(fd);
}

static unsigned long locked_flags(const char *path) {
    struct statvfs info;
    if (statvfs(path, &info) != 0) fail(path);
    unsigned long flags = 0;
    if (info.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (info.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (info.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (info.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (info.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (info.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    if (info.f_flag & ST_RDONLY) flags |= MS_RDONLY;
    return flags;
}

/// Sets read-only (optionally), nosuid and nodev on the mount at `path` and every mount below
/// it; flags the kernel locked on the source stay as they were.
static void restrict_mount(const char *path, bool readonly) {
    struct jobserver_mount_attr attr = {
        .attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (readonly ? MOUNT_ATTR_RDONLY : 0),
    };
    if (syscall(SYS_mount_setattr, AT_FDCWD, path, AT_RECURSIVE, &attr, sizeof attr) == 0) return;
    if (errno != ENOSYS) fail(path);
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0);
    if (mount(NULL, path, NULL, flags | locked_flags(path), NULL) != 0) fail(path);
}

static void bind_mount(const char *source, const struct stat *info, const char *target, bool readonly) {
    if (S_ISDIR(info->st_mode)) make_dirs(target, 0755);
    else make_file(target, 0644);
    if (mount(source, target, NULL, MS_BIND | MS_REC, NULL) != 0) fail(target);
    restrict_mount(target, readonly);
}

/// Binds host `source` (a path under the old root) at `target` (under the new root).
static void bind(const char *source, const char *target, bool readonly) {
    struct stat info;
    if (lstat(source, &info) != 0) fail(source);
    if (S_ISLNK(info.st_mode)) fail_msg(source, "is a symbolic link");
    bind_mount(source, &info, target, readonly);
}

/// Binds what the launcher opened (`fd`, O_PATH) at `target`, through the host's
/// /proc/self/fd: the kernel follows that link to the file itself, whatever the path to it.
static void bind_descriptor(int fd, const char *target, bool readonly) {
    struct stat info;
    if (fstat(fd, &info) != 0) fail(target);
    char source[64];
    snprintf(source, sizeof source, OLD "/proc/self/fd/%d", fd);
    bind_mount(source, &info, target, readonly);
}

/// Copies a host symlink (such as /bin → usr/bin, /etc/localtime → zoneinfo) as it is.
static bool copy_symlink(const char *source, const char *target) {
    char link[PATH_MAX];
    ssize_t n = readlink(source, link, sizeof link - 1);
    if (n < 0) return false;
    link[n] = '\0';
    if (symlink(link, target) != 0) fail(target);
    return true;
}

static void bind_system_entry(const char *host, const char *inside) {
    struct stat info;
    if (lstat(host, &info) != 0) return;  // not on this host
    if (S_ISLNK(info.st_mode)) copy_symlink(host, inside);
    else if (S_ISDIR(info.st_mode) || S_ISREG(info.st_mode)) bind(host, inside, true);
}

static void build_etc(void) {
    make_dirs(NEW "/etc", 0755);
    char host[PATH_MAX], inside[PATH_MAX];
    for (size_t i = 0; i < sizeof generated_etc / sizeof generated_etc[0]; i++) {
        path_join(inside, NEW "/etc", generated_etc[i].name);
        write_new_file(inside, generated_etc[i].text);
    }
    for (size_t i = 0; i < sizeof etc_entries / sizeof etc_entries[0]; i++) {
        path_join(host, OLD "/etc", etc_entries[i]);
        path_join(inside, NEW "/etc", etc_entries[i]);
        bind_system_entry(host, inside);
    }
    DIR *etc = opendir(OLD "/etc");
    if (etc == NULL) fail("/etc");
    struct dirent *entry;
    while ((entry = readdir(etc)) != NULL) {
        if (strncmp(entry->d_name, "python3", 7) != 0) continue;
        path_join(host, OLD "/etc", entry->d_name);
        path_join(inside, NEW "/etc", entry->d_name);
        bind_system_entry(host, inside);
    }
    closedir(etc);
}

static void build_dev(void) {
    make_dirs(NEW "/dev", 0755);
    if (mount("tmpfs", NEW "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755") != 0) {
        fail("/dev tmpfs");
    }
    static const char *const devices[] = { "null", "zero", "full", "random", "urandom", "tty" };
    char host[PATH_MAX], inside[PATH_MAX];
    for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
        path_join(host, OLD "/dev", devices[i]);
        path_join(inside, NEW "/dev", devices[i]);
        make_file(inside, 0666);
        if (mount(host, inside, NULL, MS_BIND, NULL) != 0) fail(inside);
    }
    make_dirs(NEW "/dev/pts", 0755);
    if (mount("devpts", NEW "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") != 0) {
        fail("/dev/pts");
    }
    make_dirs(NEW "/dev/shm", 01777);
    if (mount("tmpfs", NEW "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64m,mode=1777") != 0) {
        fail("/dev/shm");
    }
    static const struct { const char *name, *target; } links[] = {
        { "ptmx", "pts/ptmx" }, { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
        { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
    };
    for (size_t i = 0; i < sizeof links / sizeof links[0]; i++) {
        path_join(inside, NEW "/dev", links[i].name);
        if (symlink(links[i].target, inside) != 0) fail(inside);
    }
    if (mount(NULL, NEW "/dev", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NOEXEC, "size=64k,nr_inodes=64,mode=0755") != 0) {
        fail("/dev read-only");
    }
}

static void mount_tmpfs(const char *target, unsigned long long bytes) {
    char inside[PATH_MAX], options[128];
    path_join(inside, NEW, target);
    make_dirs(inside, 0755);
    bool shared = strcmp(target, "/tmp") == 0;
    unsigned long long inodes = bytes / 4096 < 1024 ? 1024 : bytes / 4096;
    snprintf(options, sizeof options, "size=%llu,nr_inodes=%llu,mode=%s", bytes, inodes, shared ? "1777" : "0700");
    if (mount("tmpfs", inside, "tmpfs", MS_NOSUID | MS_NODEV, options) != 0) fail(inside);
}

void build_root_and_pivot(const struct options *o) {
    // Nothing mounted here propagates back to the host.
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("make / private");
    // A scratch tmpfs over /tmp (in this namespace only) holds the old and the new root.
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,nr_inodes=64,mode=0755") != 0) {
        fail("scratch tmpfs");
    }
    if (mkdir("/tmp/oldroot", 0755) != 0 || mkdir("/tmp/newroot", 0755) != 0) fail("scratch dirs");
    if (chdir("/tmp") != 0) fail("chdir scratch");
    if (syscall(SYS_pivot_root, ".", "oldroot") != 0) fail("pivot_root scratch");
    if (chdir("/") != 0) fail("chdir /");
    if (mount("tmpfs", NEW, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") != 0) {
        fail("root tmpfs");
    }

    char host[PATH_MAX], inside[PATH_MAX];
    for (size_t i = 0; i < sizeof system_dirs / sizeof system_dirs[0]; i++) {
        path_join(host, OLD, system_dirs[i]);
        path_join(inside, NEW, system_dirs[i]);
        bind_system_entry(host, inside);
    }
    build_etc();
    for (int i = 0; i < o->nbinds; i++) {
        if (o->binds[i].target[0] != '/') fail_msg("bind", "targets must be absolute");
        path_join(inside, NEW, o->binds[i].target);
        bind_descriptor(o->binds[i].fd, inside, !o->binds[i].writable);
    }
    for (int i = 0; i < o->ntmpfs; i++) mount_tmpfs(o->tmpfs[i].target, o->tmpfs[i].size_bytes);
    if (o->gateway_socket != NULL) {
        bind_descriptor(o->gateway_fd, NEW "/run/jobserver/gateway.sock", true);
    }
    build_dev();
    make_dirs(NEW "/proc", 0555);
    if (mount("proc", NEW "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail("/proc");
    make_dirs(NEW "/var", 0755);
    if (symlink("/tmp", NEW "/var/tmp") != 0) fail("/var/tmp");
    make_dirs(NEW "/home", 0755);
    if (mount(NULL, NEW, NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, "size=1m,nr_inodes=4096,mode=0755") != 0) {
        fail("root read-only");
    }

    // Into the new root; the old one (the host's filesystem) is detached entirely.
    if (chdir(NEW) != 0) fail("chdir new root");
    if (syscall(SYS_pivot_root, ".", ".") != 0) fail("pivot_root");
    if (umount2(".", MNT_DETACH) != 0) fail("detach host filesystem");
    if (chdir("/") != 0) fail("chdir /");
    if (o->cwd != NULL && chdir(o->cwd) != 0) fail("chdir working directory");
}
