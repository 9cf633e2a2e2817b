// A stand-in for the Claude Code CLI used by the benchmarks (scripts/bench.sh): it ignores its
// arguments, prints a stream-json `system/init` line carrying the process start time
// (CLOCK_REALTIME, ns) and a successful `result` line, and exits 0. No Foundation: it starts fast.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

var now = timespec()
clock_gettime(CLOCK_REALTIME, &now)
let startedAtNs = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)

let output = """
{"type":"system","subtype":"init","started_at_ns":\(startedAtNs)}
{"type":"result","subtype":"success","is_error":false,"result":"ok","num_turns":1,"duration_ms":1,"duration_api_ms":0,"total_cost_usd":0,"usage":{"input_tokens":0,"output_tokens":0}}

"""
var bytes = Array(output.utf8)
var written = 0
while written < bytes.count {
    let n = bytes[written...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    if n < 0 { if errno == EINTR { continue } else { exit(1) } }
    written += n
}
exit(0)
