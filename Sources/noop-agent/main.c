// noop-agent: stands in for the Claude Code CLI in the benchmarks (scripts/bench.sh), so they
// measure the service's own cost. It prints a stream-json `system/init` line carrying its start
// time (CLOCK_REALTIME, ns, at its entry point and again at `main`) and a successful `result`
// line, and exits 0.
//
// When its prompt (`-p PROMPT`) contains `events=N`, it also prints N `stream_event` lines in
// between, each stamped with `written_at_ns` (CLOCK_REALTIME just before the line is written to
// the pipe), one every `interval_us=U` microseconds (default 1000), padded with `pad=B` bytes
// (default 0): the streaming benchmarks measure how long an event takes from the agent's write
// to a client. Written in C and linked statically so that its own start-up is as small as a
// process allows.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

// The process's entry point (linked with `-e noop_entry`, see Package.swift): it reads
// CLOCK_REALTIME with a raw system call into `entry_time`, then continues at the C library's
// `_start`. That is the moment the process starts running; `main` comes only after the C
// library's own start-up, which on some VMs costs most of a millisecond (glibc probes the CPU
// caches with CPUID instructions that trap to the hypervisor). Both are reported.
struct timespec entry_time;
void noop_entry(void);
#if defined(__x86_64__)
__asm__(".text\n.globl noop_entry\n.type noop_entry,@function\nnoop_entry:\n"
        "  mov $228, %eax\n"           // SYS_clock_gettime
        "  xor %edi, %edi\n"           // CLOCK_REALTIME
        "  lea entry_time(%rip), %rsi\n"
        "  syscall\n"
        "  xor %edx, %edx\n"           // as the kernel left it: no dynamic linker's fini
        "  jmp _start\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl noop_entry\n.type noop_entry,%function\nnoop_entry:\n"
        "  mov x8, #113\n"             // SYS_clock_gettime
        "  mov x0, #0\n"               // CLOCK_REALTIME
        "  adrp x1, entry_time\n"
        "  add x1, x1, :lo12:entry_time\n"
        "  svc #0\n"
        "  mov x0, #0\n"               // as the kernel left it: no dynamic linker's fini
        "  b _start\n");
#else
#error "noop-agent: no entry trampoline for this architecture"
#endif

static int write_all(const char *text, size_t length) {
    for (size_t written = 0; written < length;) {
        ssize_t n = write(1, text + written, length - written);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return -1;
        written += (size_t)n;
    }
    return 0;
}

// The number after `key=` in `prompt`, or `fallback`.
static long option(const char *prompt, const char *key, long fallback) {
    if (prompt == NULL) return fallback;
    const char *found = strstr(prompt, key);
    if (found == NULL) return fallback;
    return strtol(found + strlen(key), NULL, 10);
}

int main(int argc, char **argv) {
    long long in_main = now_ns();
    long long started = (long long)entry_time.tv_sec * 1000000000LL + entry_time.tv_nsec;
    if (started == 0) started = in_main;
    const char *prompt = NULL;
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "-p") == 0) prompt = argv[i + 1];
    }
    long events = option(prompt, "events=", 0);
    long interval = option(prompt, "interval_us=", 1000);
    long pad = option(prompt, "pad=", 0);
    if (events < 0) events = 0;
    if (pad < 0 || pad > 65536) pad = 0;

    char line[66000];
    int length = snprintf(line, sizeof line,
        "{\"type\":\"system\",\"subtype\":\"init\",\"started_at_ns\":%lld,\"main_at_ns\":%lld}\n", started, in_main);
    if (write_all(line, (size_t)length) != 0) return 1;

    char padding[65537];
    memset(padding, 'x', (size_t)pad);
    padding[pad] = 0;
    for (long i = 1; i <= events; i++) {
        if (interval > 0) {
            struct timespec pause = {interval / 1000000, (interval % 1000000) * 1000};
            while (nanosleep(&pause, &pause) != 0 && errno == EINTR) {}
        }
        length = snprintf(line, sizeof line,
            "{\"type\":\"stream_event\",\"n\":%ld,\"written_at_ns\":%lld,\"pad\":\"%s\"}\n", i, now_ns(), padding);
        if (write_all(line, (size_t)length) != 0) return 1;
    }

    length = snprintf(line, sizeof line,
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\",\"num_turns\":1,"
        "\"duration_ms\":1,\"duration_api_ms\":0,\"total_cost_usd\":0,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}\n");
    return write_all(line, (size_t)length) == 0 ? 0 : 1;
}

// See Sources/Sandbox/Launcher/main.c: lets a C program linked by swiftc skip the Swift runtime.
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
