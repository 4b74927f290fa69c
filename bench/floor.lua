-- wrk script: the benchmark floor (one indexed SELECT + one INSERT, raw aiomysql, same app).
-- args: <pipeline code>
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  wrk.method = "POST"
  wrk.path = "/api/dist/bench/floor/" .. args[1]
  ok, failed = 0, 0
end

function response(status, hdrs, body)
  if status == 200 then ok = ok + 1 else failed = failed + 1 end
end

function done(summary, latency, requests)
  local o, x = 0, 0
  for _, t in ipairs(threads) do
    o, x = o + t:get("ok"), x + t:get("failed")
  end
  io.write(string.format("RESULT ok=%d failed=%d\n", o, x))
end
