-- wrk script: a plain GET (the shared HTTP stack alone, e.g. /healthz); counts non-2xx as failed.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  ok, failed = 0, 0
end

function response(status, hdrs, body)
  if status < 300 then ok = ok + 1 else failed = failed + 1 end
end

function done(summary, latency, requests)
  local o, x = 0, 0
  for _, t in ipairs(threads) do
    o, x = o + t:get("ok"), x + t:get("failed")
  end
  io.write(string.format("RESULT ok=%d failed=%d\n", o, x))
end
