-- Cycle through a file of request paths (one per line), GET each; machine-readable summary at the end.
-- Usage: wrk [options] -s urls.lua http://host:port -- PATHS_FILE

local paths = {}
local next_index = 1

function init(args)
  for line in io.lines(args[1]) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  wrk.headers["Accept"] = "application/fhir+json"
end

function request()
  local path = paths[next_index]
  next_index = next_index % #paths + 1
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
