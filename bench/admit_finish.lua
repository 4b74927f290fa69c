-- wrk script: the distributor API's hot path. Every admitted call is finished by the next
-- request any connection of the thread sends; otherwise a new call is admitted.
-- args: <api key> <pipeline code> <run tag>
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  key, code, tag = args[1], args[2], args[3]
  admits, finishes, refused, failed, busy, seq = 0, 0, 0, 0, 0, 0
  pending = {}
  headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}
  admit_path = "/api/dist/v1/pipelines/" .. code .. "/calls"
end

function request()
  local call = table.remove(pending)
  if call then
    return wrk.format("POST", "/api/dist/v1/calls/" .. call .. "/finish", headers, '{"status":"succeeded"}')
  end
  seq = seq + 1
  return wrk.format("POST", admit_path, headers,
                    '{"request_id":"' .. tag .. "-" .. tid .. "-" .. seq .. '","units":1}')
end

function response(status, hdrs, body)
  if status == 201 then
    admits = admits + 1
    table.insert(pending, body:match('"call_id":"(%w+)"'))
  elseif status == 200 then
    finishes = finishes + 1
  elseif status == 429 then
    refused = refused + 1
  else
    failed = failed + 1  -- every other status; a 503 ("busy", "unavailable") is also counted apart
    if status == 503 then busy = busy + 1 end
  end
end

function done(summary, latency, requests)
  local a, f, r, x, b = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a, f, r, x = a + t:get("admits"), f + t:get("finishes"), r + t:get("refused"), x + t:get("failed")
    b = b + t:get("busy")
  end
  io.write(string.format("RESULT admits=%d finishes=%d refused=%d failed=%d busy=%d\n", a, f, r, x, b))
end
