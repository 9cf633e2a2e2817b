#!/usr/bin/env python3
"""Sandbox set-up cost: `true` in jobserver-launch's sandbox vs in bubblewrap with the same
isolation (user, mount, pid, net, ipc, uts and cgroup namespaces; a new root of read-only
/usr, the same curated /etc entries, the workspace read-write, tmpfs /tmp and $HOME, /dev,
/proc; every capability dropped; the same seccomp filter, exported by the launcher; dies with
its parent). Runs are interleaved so both see the same machine. Prints min/median/p90 in ms
and a final machine-readable line.

    sandbox_bench.py --launcher PATH [--runs 300] [--cgroups]
"""
import argparse, json, os, shutil, statistics, sys, tempfile, time

ETC = ["ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
       "ca-certificates.conf", "localtime", "timezone", "mime.types", "protocols", "services",
       "bash.bashrc", "profile", "inputrc", "terminfo", "gai.conf", "host.conf", "debian_version",
       "os-release", "magic", "mke2fs.conf", "gitconfig", "vim", "perl"]
MB64 = str(64 << 20)


def run(argv, pass_fds=()):
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0)])
    _, status = os.waitpid(pid, 0)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{argv[0]} failed with {os.waitstatus_to_exitcode(status)}")
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--launcher", required=True)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--cgroups", action="store_true", help="also time the launcher with cgroup limits (root)")
    options = parser.parse_args()
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        sys.exit("bubblewrap is not installed (scripts/setup.sh installs it)")
    root = tempfile.mkdtemp(prefix="sandbox-bench-")
    work = os.path.join(root, "work")
    os.mkdir(work)
    filter_path = os.path.join(root, "seccomp.bpf")
    with open(filter_path, "wb") as out:
        os.set_inheritable(out.fileno(), True)
        pid = os.posix_spawn(options.launcher, [options.launcher, "--export-seccomp"], os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, out.fileno(), 1)])
        os.waitpid(pid, 0)
    identity = ["--map-uid", "1500000001", "--map-gid", "1500000001"] if os.geteuid() == 0 else []
    ours = [options.launcher, "--sandbox", *identity, "--bind", work, "/workspace", "--tmpfs", "/tmp", MB64,
            "--tmpfs", "/home/agent", MB64, "--cwd", "/workspace", "--cgroup", "off", "--", "/usr/bin/true"]
    ours_cgroup = [options.launcher, "--sandbox", *identity, "--bind", work, "/workspace", "--tmpfs", "/tmp", MB64,
                   "--tmpfs", "/home/agent", MB64, "--cwd", "/workspace", "--cgroup", "required",
                   "--cgroup-name", f"bench-{os.getpid()}", "--memory", str(1 << 30), "--pids", "512",
                   "--", "/usr/bin/true"]
    filter_fd = os.open(filter_path, os.O_RDONLY)
    os.set_inheritable(filter_fd, True)
    theirs = [bwrap, "--unshare-user", "--uid", "1000", "--gid", "1000", "--unshare-pid", "--unshare-net",
              "--unshare-ipc", "--unshare-uts", "--unshare-cgroup", "--die-with-parent", "--new-session",
              "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr"]
    for name in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]:
        path = "/" + name
        if os.path.islink(path):
            theirs += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            theirs += ["--ro-bind", path, path]
    theirs += ["--dir", "/etc"]
    for name in ETC:
        if os.path.exists("/etc/" + name):
            theirs += ["--ro-bind", "/etc/" + name, "/etc/" + name]
    theirs += ["--bind", work, "/workspace", "--tmpfs", "/tmp", "--tmpfs", "/home/agent", "--dev", "/dev",
               "--proc", "/proc", "--chdir", "/workspace", "--seccomp", str(filter_fd), "/usr/bin/true"]

    variants = {"jobserver-launch": ours, "bwrap": theirs}
    if options.cgroups:
        variants["jobserver-launch+cgroups"] = ours_cgroup
    times = {name: [] for name in variants}
    def timed(argv):
        os.lseek(filter_fd, 0, os.SEEK_SET)  # bwrap reads the filter from the fd each run
        return run(argv)

    for argv in variants.values():  # warm the page cache
        for _ in range(5):
            timed(argv)
    for _ in range(options.runs):
        for name, argv in variants.items():
            times[name].append(timed(argv))
    shutil.rmtree(root, ignore_errors=True)

    summary = {}
    print(f"sandbox set-up + true, {options.runs} runs each, interleaved ({'root' if os.geteuid() == 0 else 'unprivileged'})")
    for name, values in times.items():
        values.sort()
        figures = {"min_ms": round(values[0], 3), "median_ms": round(statistics.median(values), 3),
                   "p90_ms": round(values[int(len(values) * 0.9)], 3)}
        summary[name] = figures
        print(f"  {name:26s} min {figures['min_ms']:7.3f} ms   median {figures['median_ms']:7.3f} ms   p90 {figures['p90_ms']:7.3f} ms")
    base = summary["bwrap"]
    for name in summary:
        if name != "bwrap":
            ratio = summary[name]["median_ms"] / base["median_ms"]
            summary[name]["median_vs_bwrap"] = round(ratio, 3)
            summary[name]["min_vs_bwrap"] = round(summary[name]["min_ms"] / base["min_ms"], 3)
            print(f"  {name} / bwrap: median {ratio:.2f}x, min {summary[name]['min_vs_bwrap']:.2f}x (goal <= 1.0x)")
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
