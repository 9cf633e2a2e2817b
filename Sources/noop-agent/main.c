// noop-agent: stands in for the Claude Code CLI in the benchmarks (scripts/bench.sh), so they
// measure the service's own cost. It ignores its arguments, prints a stream-json `system/init`
// line carrying its start time (CLOCK_REALTIME, ns) and a successful `result` line, and exits 0.
// Written in C and linked statically so that its own start-up is as small as a process allows.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char output[512];
    int length = snprintf(output, sizeof output,
        "{\"type\":\"system\",\"subtype\":\"init\",\"started_at_ns\":%lld}\n"
        "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\",\"num_turns\":1,"
        "\"duration_ms\":1,\"duration_api_ms\":0,\"total_cost_usd\":0,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}\n",
        (long long)now.tv_sec * 1000000000LL + now.tv_nsec);
    for (int written = 0; written < length;) {
        ssize_t n = write(1, output + written, (size_t)(length - written));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return 1;
        written += (int)n;
    }
    return 0;
}

// See Sources/Sandbox/Launcher/main.c: lets a C program linked by swiftc skip the Swift runtime.
void swift_addNewDSOImage(const void *image);
void swift_addNewDSOImage(const void *image) { (void)image; }
int _swift_backtrace_isThunkFunction(const char *name);
int _swift_backtrace_isThunkFunction(const char *name) { (void)name; return 0; }
