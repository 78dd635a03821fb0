-- wrk script for bench/gateway: POST /webhook/bench, each request signed with its own delivery
-- id (so each is a new event, not a de-duplicated redelivery). Thread N reads its requests,
-- "TIMESTAMP DELIVERY SIGNATURE" lines, from $BENCH_WEBHOOK_LIST.N (made by bench/gateway).
local threads = 0
function setup(thread)
  thread:set("n", threads)
  threads = threads + 1
end

local requests, i = {}, 0
function init(args)
  local body = os.getenv("BENCH_WEBHOOK_BODY")
  for line in io.lines(os.getenv("BENCH_WEBHOOK_LIST") .. "." .. n) do
    local ts, id, sig = line:match("(%S+) (%S+) (%S+)")
    requests[#requests + 1] = wrk.format("POST", "/webhook/bench", {
      ["Content-Type"] = "application/json",
      ["X-Conclave-Timestamp"] = ts,
      ["X-Conclave-Delivery"] = id,
      ["X-Conclave-Signature"] = "sha256=" .. sig,
    }, body)
  end
end

function request()
  i = i + 1
  if i > #requests then i = 1 end -- wrapped: redeliveries, counted apart by the script
  return requests[i]
end
