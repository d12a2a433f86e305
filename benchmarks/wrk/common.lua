-- Shared by the wrk scripts in this folder (loaded with dofile by each of them).
--
-- Environment (read when wrk loads the script):
--   BENCH_API_KEY      sent as X-API-Key when set
--   BENCH_RUN          prefix making record ids unique across runs (default: os.time())
--   BENCH_RATE         paced scripts: target requests/s over all connections
--   BENCH_CONNECTIONS  paced scripts: the -c given to wrk (to split the rate per connection)
--   BENCH_BATCH        batch scripts: records per request (default 500)
-- Record ids are unique per request (run prefix, wrk thread, counter): the ingestor treats an
-- identical payload as a retry, which would measure the duplicate path instead of ingest.
-- done() prints one line `BENCH_RESULT {json}` that benchmarks/run_ingest_bench.py parses.

local M = {}

local run = os.getenv("BENCH_RUN") or tostring(os.time())
local api_key = os.getenv("BENCH_API_KEY")
local threads = {}

local RECORD = '{"transaction_id":"BT-%s-%d-%d","timestamp":"2024-01-01T12:00:00Z",'
  .. '"account_id":"ACC-123456","amount":"125.50","currency":"USD",'
  .. '"transaction_type":"payment","merchant_id":"MER-123","category":"groceries"}'

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  statuses = {}
  math.randomseed(os.time() + (tid or 0))
end

local function headers(content_type)
  local h = { ["Content-Type"] = content_type }
  if api_key and api_key ~= "" then
    h["X-API-Key"] = api_key
  end
  return h
end

local function record()
  counter = counter + 1
  return string.format(RECORD, run, tid or 0, counter)
end

-- One transaction per request (the seed's endpoint).
function M.single()
  local h = headers("application/json")
  request = function()
    return wrk.format("POST", "/ingest-financial-transaction/", h, record())
  end
end

-- BENCH_BATCH (500) transactions per request as NDJSON.
function M.batch()
  local size = tonumber(os.getenv("BENCH_BATCH") or "500")
  local h = headers("application/x-ndjson")
  request = function()
    local lines = {}
    for i = 1, size do
      lines[i] = record()
    end
    return wrk.format("POST", "/v1/transactions/batch", h, table.concat(lines, "\n") .. "\n")
  end
end

-- A near-fixed rate: each connection waits ~connections/rate between a response and its next
-- request, jittered uniformly over [0.5, 1.5] x that so connections do not fire in lockstep.
function M.paced()
  local rate = tonumber(os.getenv("BENCH_RATE") or "")
  local conns = tonumber(os.getenv("BENCH_CONNECTIONS") or "")
  assert(rate and conns, "paced scripts need BENCH_RATE and BENCH_CONNECTIONS")
  local base_ms = 1000 * conns / rate
  delay = function()
    return base_ms * (0.5 + math.random())
  end
end

-- Count responses by status code (costs wrk some CPU: only where the mix matters).
function M.count_statuses()
  response = function(status, headers, body)
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local st = thread:get("statuses") or {}
    for code, n in pairs(st) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', code, n))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,'
      .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f},'
      .. '"statuses":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean,
    table.concat(parts, ",")))
end

return M
