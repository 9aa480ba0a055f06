-- wrk script: the benchmark request with ten headers, the bearer token rotating through the
-- pool (one token per line in the file given after `--`), to the URL's path; prints one JSON
-- line when done.
local tokens = {}
local next_token = 0

function init(args)
  for line in io.lines(args[1]) do
    tokens[#tokens + 1] = line
  end
end

-- Like the gRPC bodies (benchmarks/messages.py), each request carries its client's address
-- (the address of request k: 10.0.k/250.k%250+1, in X-Forwarded-For, which a trusted
-- gateway would set) and a request id, so the HTTP check does the same per-client work
-- (the brute-force lockout lookup) and audit line as the gRPC one.
function request()
  next_token = next_token % #tokens + 1
  local k = next_token - 1
  return wrk.format("GET", wrk.path, {
    ["Host"] = "api.example.com",
    ["Authorization"] = "Bearer " .. tokens[next_token],
    ["User-Agent"] = "bench-client/1.0",
    ["Accept"] = "application/json",
    ["Accept-Encoding"] = "gzip, br",
    ["X-Forwarded-Proto"] = "https",
    ["X-Forwarded-For"] = string.format("10.0.%d.%d", math.floor(k / 250), k % 250 + 1),
    ["X-Request-Id"] = string.format("00000000-0000-4000-8000-%012d", k),
  })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
