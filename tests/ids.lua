-- wrk script: POST the JSON body in the file named after `--`, each request with its own
-- X-Request-ID, and write the id of every 200 answer received to <prefix>-<thread number>.
-- wrk runs each thread in its own Lua state, so each thread numbers its own requests and writes
-- its own file; the ids come from the answers' X-Request-ID header (the service echoes it).
--   wrk -t2 -c16 -d6s -s tests/ids.lua URL -- body.json /tmp/answered
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads_started = 0

function setup(thread)
  threads_started = threads_started + 1
  thread:set("thread_number", threads_started)
end

function init(args)
  local file = assert(io.open(args[1], "rb"))
  wrk.body = file:read("*a")
  file:close()
  answered = assert(io.open(args[2] .. "-" .. thread_number, "w"))
  prefix = "w" .. thread_number .. "-" .. args[3] .. "-"
  sent = 0
end

function request()
  sent = sent + 1
  wrk.headers["X-Request-ID"] = prefix .. sent
  return wrk.format()
end

function response(status, headers, body)
  if status == 200 then
    answered:write(headers["X-Request-ID"] or "missing", "\n")
    answered:flush()
  end
end
