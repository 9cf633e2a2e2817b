-- wrk script for scripts/bench.sh: POST /v1/jobs with the benchmark's job, bearer token from
-- the TOKEN environment variable. Prints one RESULT line (see docs/benchmarks.md).
wrk.method = "POST"
wrk.path = "/v1/jobs"
wrk.body = '{"type":"generate","project":"p","prompt":"x"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("TOKEN") or "")

done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f per_s=%.1f non_2xx=%d socket_errors=%d p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, seconds, summary.requests / seconds, errors.status,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
