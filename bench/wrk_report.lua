-- wrk script for bench.web: requests cycle through the paths in a file,
-- with the session cookie, and the summary is printed as one line.
local paths = {}
local cookie = os.getenv("BENCH_COOKIE") or ""
local counter = 0

function init(args)
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
end

function request()
  counter = counter + 1
  return wrk.format("GET", paths[(counter % #paths) + 1], { ["Cookie"] = cookie })
end

function done(summary, latency, requests)
  local errors = summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
  io.write(string.format("RESULT %d %d %d %.3f %.3f %.3f\n", summary.requests, summary.errors.status, errors,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency.max / 1000))
end
