-- One fixed request repeated by wrk, and a machine-readable summary at the end.
-- Usage: wrk [options] -s scenario.lua URL -- METHOD [BODY_FILE]
-- The body is read once per thread, so wrk measures the server, not the script.

function init(args)
  wrk.method = args[1] or "GET"
  wrk.headers["Accept"] = "application/fhir+json"
  local path = args[2]
  if path and path ~= "" then
    local file = assert(io.open(path, "rb"))
    wrk.body = file:read("*a")
    file:close()
    wrk.headers["Content-Type"] = "application/fhir+json"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, ' ..
    '"mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max))
end
