-- wrk script for the bench: POST one JSON body, then print the run's figures as one JSON line.
-- Usage: wrk -s bench/post.lua http://127.0.0.1:PORT/classify/NAME -- BODY_FILE
-- wrk calls init() in each of its threads before it formats the request.

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.method = "POST"
  wrk.body = file:read("*a")
  wrk.headers["Content-Type"] = "application/json"
  file:close()
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
