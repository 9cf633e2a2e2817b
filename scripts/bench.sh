#!/usr/bin/env bash
# Benchmarks jobserver against a huey baseline on this machine (docs/benchmarks.md).
#   make bench            (runs scripts/setup.sh with SETUP_BENCH=1, then this script)
#   scripts/bench.sh      (installs huey into .tools/python itself if missing)
#
# Knobs (environment): BENCH_SUBMIT_SECONDS (5 s of wrk per submission run),
# BENCH_SUBMIT_JOBS (5000: huey's enqueues and the limiter runs), BENCH_SUBMIT_CONCURRENCY (16),
# BENCH_E2E_JOBS (1000), BENCH_WORKERS (2 processes), BENCH_WORKER_CONCURRENCY (2 per process),
# BENCH_LATENCY_JOBS (200), BENCH_LIMITS_ROUNDS (5 alternations of limits off/on),
# BENCH_WS_EVENTS (2000 events for the stream latency),
# BENCH_WS_INTERVAL_US (2000), BENCH_FANOUT_SUBSCRIBERS (1000), BENCH_FANOUT_EVENTS (1000),
# BENCH_SCRATCH_PATH (SwiftPM build dir, default .build),
# BENCH_SKIP_BUILD=1 uses already-built products, BENCH_KEEP=1 keeps the data directories (their processes.log has every service log line).
#
# Every process it starts is stopped by pid on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SUBMIT_SECONDS=${BENCH_SUBMIT_SECONDS:-5}
SUBMIT_JOBS=${BENCH_SUBMIT_JOBS:-5000}
SUBMIT_CONCURRENCY=${BENCH_SUBMIT_CONCURRENCY:-16}
E2E_JOBS=${BENCH_E2E_JOBS:-1000}
WORKERS=${BENCH_WORKERS:-2}
WORKER_CONCURRENCY=${BENCH_WORKER_CONCURRENCY:-2}
LATENCY_JOBS=${BENCH_LATENCY_JOBS:-200}
LIMITS_ROUNDS=${BENCH_LIMITS_ROUNDS:-5}
WS_EVENTS=${BENCH_WS_EVENTS:-2000}
WS_INTERVAL_US=${BENCH_WS_INTERVAL_US:-2000}
FANOUT_SUBSCRIBERS=${BENCH_FANOUT_SUBSCRIBERS:-1000}
FANOUT_EVENTS=${BENCH_FANOUT_EVENTS:-1000}
SCRATCH=${BENCH_SCRATCH_PATH:-.build}

PIDS=()
DIRS=()
WORK=$(mktemp -d "${TMPDIR:-/tmp}/jobserver-bench.XXXXXX")
DIRS+=("$WORK")

stop_pids() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    PIDS=()
}
cleanup() {
    stop_pids
    if [ "${BENCH_KEEP:-0}" = "1" ]; then
        echo "bench: kept $WORK"
    else
        rm -rf "${DIRS[@]}"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools and build -------------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "bench: wrk is missing: run SETUP_BENCH=1 scripts/setup.sh (make bench) first"; exit 1; }
    echo "bench: installing wrk"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
if [ ! -d .tools/python/huey ]; then
    echo "bench: installing huey into .tools/python"
    python3 -m pip install -q --disable-pip-version-check --target .tools/python huey
fi

if [ "${BENCH_SKIP_BUILD:-0}" = "1" ]; then
    echo "bench: BENCH_SKIP_BUILD=1: using the release products already in $SCRATCH"
else
    echo "bench: building release products (scratch path $SCRATCH)"
    for product in jobserver jobserver-launch noop-agent jobserver-bench; do
        swift build -c release --scratch-path "$SCRATCH" --product "$product" >"$WORK/build-$product.log" 2>&1 \
            || { cat "$WORK/build-$product.log"; exit 1; }
    done
fi
BIN=$(swift build -c release --scratch-path "$SCRATCH" --show-bin-path)
JS="$BIN/jobserver"
BENCH="$BIN/jobserver-bench"
NOOP="$BIN/noop-agent"

value() { grep -o "$2=[^ ]*" "$1" | tail -1 | cut -d= -f2; }
# CPU time the hypervisor gave to other guests ("steal", /proc/stat): the share of this run's
# CPU time it took says how far other machines on the host disturbed the figures.
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9, $9 }' /proc/stat; }
read -r TICKS_START STEAL_START < <(cpu_ticks)

# --- huey baseline ---------------------------------------------------------------------------
echo
echo "== huey $(PYTHONPATH=.tools/python python3 -c 'import huey; print(huey.__version__)') baseline"
PYTHONPATH="$ROOT/.tools/python:$ROOT/Benchmarks" python3 Benchmarks/huey_baseline.py \
    --enqueue-jobs "$SUBMIT_JOBS" --e2e-jobs "$E2E_JOBS" | tee "$WORK/huey.out"

# --- jobserver -------------------------------------------------------------------------------
export LOG_LEVEL=${LOG_LEVEL:-warning}
# The no-op agent never calls a model; the worker gets a dummy key and an unroutable URL.
export ANTHROPIC_API_KEY=sk-bench-unused ANTHROPIC_BASE_URL=http://127.0.0.1:9

# start_service DIR WORKER_PROCESSES [LIMITS]: fresh store, one server, N workers; sets URL and
# TOKEN. LIMITS: `lifted` (default: the bench user has no per-user limits, since these phases
# measure the service, not its throttling), `on` (every per-user limit enforced, each set too
# high to refuse anything), `off` (the server runs with --no-user-limits).
start_service() {
    local dir=$1 workers=$2 limits=${3:-lifted} i serve_flags=()
    mkdir -p "$dir"
    "$JS" migrate --data "$dir" >>"$dir/processes.log" 2>&1
    TOKEN=$("$JS" user create bench --data "$dir" 2>>"$dir/processes.log" | tail -1)
    case $limits in
        lifted) "$JS" user limits bench --rate none --max-running none --max-queued none --data "$dir" >>"$dir/processes.log" 2>&1 ;;
        on) "$JS" user limits bench --rate 1000000/s --burst 1000000 --max-running none --max-queued 100000000 \
                --daily-tokens 1000000000000 --daily-cost-usd 1000000 --data "$dir" >>"$dir/processes.log" 2>&1 ;;
        off) serve_flags=(--no-user-limits) ;;
    esac
    "$JS" serve --data "$dir" --host 127.0.0.1 --port 0 --port-file "$dir/port" "${serve_flags[@]}" >>"$dir/processes.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=($!)
    for _ in $(seq 300); do [ -s "$dir/port" ] && break; sleep 0.05; done
    [ -s "$dir/port" ] || { echo "bench: server did not start"; cat "$dir/processes.log"; exit 1; }
    URL="http://127.0.0.1:$(cat "$dir/port")"
    for ((i = 0; i < workers; i++)); do
        "$JS" worker --data "$dir" --concurrency "$WORKER_CONCURRENCY" --unsafe-direct-agent \
            --claude-path "$NOOP" >>"$dir/processes.log" 2>&1 &
        PIDS+=($!)
    done
    sleep 1  # let the workers open the store and start polling
}

# wrk_submit OUT: $SUBMIT_SECONDS s of POST /v1/jobs from $SUBMIT_CONCURRENCY keep-alive
# connections (wrk: a C load generator, so the client takes little of the two cores).
wrk_submit() {
    TOKEN=$TOKEN wrk -t1 -c"$SUBMIT_CONCURRENCY" -d"${SUBMIT_SECONDS}s" -s Benchmarks/submit.lua "$URL/v1/jobs" >"$1"
    grep -E 'Requests/sec|RESULT' "$1"
}
# check_durable OUT DIR: every submission wrk saw acknowledged (2xx) is in the store file. A
# request in flight when wrk stops may be stored without being counted, hence "at least".
check_durable() {
    local acked stored
    acked=$(( $(value "$1" requests) - $(value "$1" non_2xx) ))
    stored=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM jobs").fetchone()[0])' "$2/jobs.sqlite3")
    echo "durable: $acked acknowledged, $stored stored" | tee -a "$1"
    [ "$stored" -ge "$acked" ] || { echo "bench: LOST SUBMISSIONS: $acked acknowledged, only $stored stored"; exit 1; }
}

for sync in normal full; do
    echo
    echo "== jobserver: submission, store synchronous=$sync ($SUBMIT_SECONDS s of wrk, $SUBMIT_CONCURRENCY connections, server only)"
    JOBSERVER_SQLITE_SYNCHRONOUS=$sync start_service "$WORK/submit-$sync" 0
    wrk_submit "$WORK/submit-$sync.out"
    stop_pids
    check_durable "$WORK/submit-$sync.out" "$WORK/submit-$sync"
done

echo
echo "== ceiling: a bare Hummingbird route (no auth, no validation, no store), same wrk load"
rm -f "$WORK/floor.port"
"$BENCH" http-floor --port-file "$WORK/floor.port" &
PIDS+=($!)
for _ in $(seq 100); do [ -s "$WORK/floor.port" ] && break; sleep 0.05; done
URL="http://127.0.0.1:$(cat "$WORK/floor.port")" TOKEN=unused wrk_submit "$WORK/http-floor.out"
stop_pids

echo
echo "== ceiling: starting the no-op agent, $((WORKERS * WORKER_CONCURRENCY)) at a time ($E2E_JOBS x 5 starts; no queue, store or worker)"
"$BENCH" spawn-floor --agent "$NOOP" --jobs $((E2E_JOBS * 5)) --concurrency $((WORKERS * WORKER_CONCURRENCY)) | tee "$WORK/spawn-floor.out"

echo
echo "== jobserver: end to end ($E2E_JOBS no-op jobs, $WORKERS worker processes x concurrency $WORKER_CONCURRENCY)"
start_service "$WORK/e2e" "$WORKERS"
"$BENCH" e2e --url "$URL" --token "$TOKEN" --jobs "$E2E_JOBS" --concurrency "$SUBMIT_CONCURRENCY" | tee "$WORK/e2e.out"
stop_pids

echo
echo "== jobserver: latency ($LATENCY_JOBS sequential jobs, 1 idle worker process)"
start_service "$WORK/latency" 1
"$BENCH" latency --url "$URL" --token "$TOKEN" --jobs "$LATENCY_JOBS" | tee "$WORK/latency.out"
stop_pids

echo
echo "== jobserver: limiter cost on the submission path ($LIMITS_ROUNDS x limits off, then on; $SUBMIT_JOBS jobs each, server only)"
for ((round = 1; round <= LIMITS_ROUNDS; round++)); do
    for mode in off on; do
        start_service "$WORK/limits-$mode-$round" 0 "$mode"
        "$BENCH" submit --url "$URL" --token "$TOKEN" --jobs "$SUBMIT_JOBS" --concurrency "$SUBMIT_CONCURRENCY" \
            | tee "$WORK/limits-$mode-$round.out" | grep RESULT | sed "s/^/limits $mode, round $round: /"
        # The server's own CPU time per submission: steadier than throughput on shared cores.
        awk -v ticks="$(getconf CLK_TCK)" -v jobs="$SUBMIT_JOBS" '{ printf "CPU server_cpu_us_per_submit=%.0f\n", ($14 + $15) * 1e6 / ticks / jobs }' \
            "/proc/${PIDS[0]}/stat" | tee -a "$WORK/limits-$mode-$round.out"
        stop_pids
    done
done
# Medians over the rounds, and the median of each round's on/off ratio: one disturbed round
# (other work on the machine) moves neither.
limits_figure() { grep -ho "$2=[^ ]*" "$WORK"/limits-"$1"-*.out | cut -d= -f2; }
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
limits_ratio() { paste <(limits_figure on "$1") <(limits_figure off "$1") | awk '{ print $1 / $2 }' | median; }
limits_off=$(limits_figure off submit_jobs_per_s | median)
limits_on=$(limits_figure on submit_jobs_per_s | median)
limits_off_cpu=$(limits_figure off server_cpu_us_per_submit | median)
limits_on_cpu=$(limits_figure on server_cpu_us_per_submit | median)
limits_rate_ratio=$(limits_ratio submit_jobs_per_s)
limits_cpu_ratio=$(limits_ratio server_cpu_us_per_submit)
limits_refused=$(cat "$WORK"/limits-*.out | grep -o 'accepted=[^ ]*' | cut -d= -f2 | awk -v want="$SUBMIT_JOBS" '$1 != want { bad++ } END { print bad + 0 }')
echo "limits (medians of $LIMITS_ROUNDS rounds): off $limits_off jobs/s, on $limits_on jobs/s, on/off per round $limits_rate_ratio;" \
    "server CPU per submission off $limits_off_cpu us, on $limits_on_cpu us, on/off per round $limits_cpu_ratio;" \
    "runs with a refused or failed submission: $limits_refused"


echo
echo "== jobserver: stream latency ($WS_EVENTS events, one every $WS_INTERVAL_US us, 1 worker process, 1 WebSocket client)"
start_service "$WORK/ws-latency" 1
"$BENCH" ws-latency --url "$URL" --token "$TOKEN" --jobs "$WS_EVENTS" --interval-us "$WS_INTERVAL_US" | tee "$WORK/ws-latency.out"
stop_pids

echo
echo "== jobserver: stream fan-out ($FANOUT_SUBSCRIBERS WebSocket subscribers of one job, $FANOUT_EVENTS events, 1 server process)"
start_service "$WORK/ws-fanout" 1
"$BENCH" ws-fanout --url "$URL" --token "$TOKEN" --jobs "$FANOUT_EVENTS" --concurrency "$FANOUT_SUBSCRIBERS" \
    --interval-us 5000 --pad 200 --server-pid "$SERVER_PID" | tee "$WORK/ws-fanout.out"
stop_pids

for phase in submit-normal submit-full e2e latency ws-latency ws-fanout; do
    count=$(grep -ciE '\b(error|critical)\b' "$WORK/$phase/processes.log" || true)
    [ "$count" = "0" ] || echo "bench: $phase: $count error lines in the service log (BENCH_KEEP=1 to keep $WORK/$phase/processes.log)"
done

# --- summary ---------------------------------------------------------------------------------
huey_submit=$(value "$WORK/huey.out" huey_enqueue_per_s)
huey_submit_default=$(value "$WORK/huey.out" huey_enqueue_default_per_s)
huey_e2e=$(value "$WORK/huey.out" huey_e2e_per_s)
ours_submit=$(value "$WORK/submit-normal.out" per_s)
ours_submit_full=$(value "$WORK/submit-full.out" per_s)
ours_refused=$(( $(value "$WORK/submit-normal.out" non_2xx) + $(value "$WORK/submit-full.out" non_2xx) ))
http_floor=$(value "$WORK/http-floor.out" per_s)
spawn_floor=$(value "$WORK/spawn-floor.out" spawn_per_s)
ours_e2e=$(value "$WORK/e2e.out" e2e_jobs_per_s)
ours_done=$(value "$WORK/e2e.out" succeeded)
p50=$(value "$WORK/latency.out" latency_p50_ms)
p99=$(value "$WORK/latency.out" latency_p99_ms)
main50=$(value "$WORK/latency.out" latency_main_p50_ms)
main99=$(value "$WORK/latency.out" latency_main_p99_ms)
read -r TICKS_END STEAL_END < <(cpu_ticks)
steal=$(awk -v t=$((TICKS_END - TICKS_START)) -v s=$((STEAL_END - STEAL_START)) 'BEGIN { printf "%.1f", t ? 100 * s / t : 0 }')
ws50=$(value "$WORK/ws-latency.out" ws_latency_p50_ms)
ws99=$(value "$WORK/ws-latency.out" ws_latency_p99_ms)
fan_idle=$(value "$WORK/ws-fanout.out" fanout_idle_rss_mb)
fan_peak=$(value "$WORK/ws-fanout.out" fanout_peak_rss_mb)
fan_cpu=$(value "$WORK/ws-fanout.out" fanout_cpu_s)
fan_ok=$(value "$WORK/ws-fanout.out" fanout_complete)

echo
echo "== summary ($(nproc) cores; huey: SqliteHuey 1 producer, consumer -k process -w 2; jobserver: wrk, $SUBMIT_CONCURRENCY connections)"
awk -v hs="$huey_submit" -v hd="$huey_submit_default" -v os="$ours_submit" -v osf="$ours_submit_full" -v he="$huey_e2e" -v oe="$ours_e2e" \
    -v hfloor="$http_floor" -v sfloor="$spawn_floor" \
    -v p50="$p50" -v p99="$p99" -v main50="$main50" -v main99="$main99" -v steal="$steal" -v refused="$ours_refused" -v done="$ours_done" -v ej="$E2E_JOBS" \
    -v lon="$limits_on" -v loff="$limits_off" -v lonc="$limits_on_cpu" -v loffc="$limits_off_cpu" \
    -v lr="$limits_rate_ratio" -v lcr="$limits_cpu_ratio" \
    -v ws50="$ws50" -v ws99="$ws99" -v fidle="$fan_idle" -v fpeak="$fan_peak" -v fcpu="$fan_cpu" -v fok="$fan_ok" \
    -v fsubs="$FANOUT_SUBSCRIBERS" '
function verdict(ok) { return ok ? "met" : "MISSED" }
BEGIN {
    printf "%-34s %12s %12s %8s %8s %s\n", "metric", "jobserver", "huey", "ratio", "goal", ""
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "submission vs SqliteHuey as shipped", os, hd, os / hd, ">=1.5x", verdict(os / hd >= 1.5)
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "  both synchronous=FULL", osf, hd, osf / hd, ">=1.5x", verdict(osf / hd >= 1.5)
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "  both synchronous=NORMAL", os, hs, os / hs, ">=1.5x", verdict(os / hs >= 1.5)
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "  ceiling: bare Hummingbird route", hfloor, hs, hfloor / hs, "-", "(vs NORMAL)"
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "end-to-end no-op (jobs/s)", oe, he, oe / he, ">=4x", verdict(oe / he >= 4)
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "  ceiling: agent starts alone", sfloor, he, sfloor / he, "-", ""
    printf "%-34s %12.2f %12s %8s %8s\n", "  jobs/s as a share of the ceiling", oe / sfloor, "-", "-", "-"
    printf "%-34s %12.2f %12s %8s %8s %s\n", "submit -> agent start p50 (ms)", p50, "-", "-", "<=5", verdict(p50 <= 5)
    printf "%-34s %12.2f %12s %8s %8s %s\n", "submit -> agent start p99 (ms)", p99, "-", "-", "<=15", verdict(p99 <= 15)
    printf "%-34s %12s %12s %8s %8s\n", "  to the agent main() p50 / p99", main50 " / " main99, "-", "-", "-"
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "limits on vs off (jobs/s, median)", lon, loff, lr, ">=0.90x", verdict(lr >= 0.9)
    printf "%-34s %12.1f %12.1f %7.2fx %8s %s\n", "  server CPU us/submission on, off", lonc, loffc, lcr, "<=1.10x", verdict(lcr <= 1.1)
    printf "%-34s %12.2f %12s %8s %8s %s\n", "event -> WebSocket p50 (ms)", ws50, "-", "-", "<=20", verdict(ws50 <= 20)
    printf "%-34s %12.2f %12s %8s %8s %s\n", "event -> WebSocket p99 (ms)", ws99, "-", "-", "<=50", verdict(ws99 <= 50)
    printf "%-34s %12.1f %12s %8s %8s %s\n", "idle server RSS (MB)", fidle, "-", "-", "<=50", verdict(fidle <= 50)
    printf "%-34s %12.1f %12s %8s %8s %s\n", "server RSS, " fsubs " subscribers (MB)", fpeak, "-", "-", "<=200", verdict(fpeak <= 200)
    printf "%-34s %12.2f %12s %8s %8s\n", "server CPU during fan-out (s)", fcpu, "-", "-", "-"
    printf "(submissions refused or failed: %s; e2e jobs succeeded: %s/%s; fan-out subscribers complete: %s/%s)\n", refused, done, ej, fok, fsubs
    printf "(CPU time stolen by the hypervisor for other guests during these phases: %s%%)\n", steal
}'

# --- sandbox set-up vs bubblewrap (issue 3) ---------------------------------------------------
SANDBOX_RUNS=${BENCH_SANDBOX_RUNS:-300}
echo
echo "== sandbox set-up + true vs bwrap with the same isolation ($SANDBOX_RUNS runs each)"
python3 Benchmarks/sandbox_bench.py --launcher "$BIN/jobserver-launch" --runs "$SANDBOX_RUNS" \
    $([ "$(id -u)" -eq 0 ] && echo --cgroups)
if [ "$(id -u)" -eq 0 ] && id jobserver-test >/dev/null 2>&1; then
    copy=$(mktemp -d /tmp/jobserver-bench-unprivileged.XXXXXX)
    DIRS+=("$copy")
    cp "$BIN/jobserver-launch" Benchmarks/sandbox_bench.py "$copy/"
    chmod -R a+rX "$copy"
    (cd "$copy" && runuser -u jobserver-test -- python3 ./sandbox_bench.py --launcher ./jobserver-launch --runs "$SANDBOX_RUNS")
fi

SANDBOX_JOBS=${BENCH_SANDBOX_JOBS:-20}
echo
echo "== whole scripted Claude job, sandboxed vs unsandboxed ($SANDBOX_JOBS jobs each, real CLI)"
"$BENCH" sandbox-job --jobs "$SANDBOX_JOBS"
