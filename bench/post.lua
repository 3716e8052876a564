-- wrk script: POST the JSON body in the file named after `--`, and print a JSON summary line.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

-- A second argument "close" sends each request on a new connection (Connection: close).
function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  if args[2] == "close" then
    wrk.headers["Connection"] = "close"
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\n{"requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, ' ..
    '"write_errors": %d, "status_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
