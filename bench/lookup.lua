-- wrk script for the tracking-lookup benchmark (bench/run.py drives it).
--
--   wrk -t1 -c64 -d15s -s bench/lookup.lua http://127.0.0.1:PORT -- MODE PAIRS UNKNOWN SEED
--
-- MODE     "lookup": GET /api/mitra/v4/instant/tracking/{order_id} for a random seeded order
--          "static": GET /bench/static (the ceiling), with the very same per-request work and
--                    the same Authorization header, so both runs cost the client the same
-- PAIRS    file of `key<TAB>order_id` lines written by bench/seed.py
-- UNKNOWN  fraction of lookups that ask for an order id that does not exist, with a valid
--          key ("data not found": still HTTP 200, by the KiriminAja transport rules)
-- SEED     random seed (each wrk thread adds its own number)
--
-- done() prints one machine-readable line: `BENCH_RESULT {json}` (latencies in microseconds).

local TRACKING = "/api/mitra/v4/instant/tracking/"
local STATIC = "/bench/static"

local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("thread_number", counter)
  table.insert(threads, thread)
end

local keys, ids, count = {}, {}, 0
local mode, unknown = "lookup", 0.1
local random = math.random

local function load_pairs(path)
  local file = assert(io.open(path, "r"), "cannot open pairs file " .. tostring(path))
  for line in file:lines() do
    local tab = line:find("\t", 1, true)
    if tab then
      count = count + 1
      keys[count] = line:sub(1, tab - 1)
      ids[count] = line:sub(tab + 1)
    end
  end
  file:close()
  assert(count > 0, "no pairs in " .. path)
end

function init(args)
  mode = args[1] or "lookup"
  assert(mode == "lookup" or mode == "static", "mode must be lookup or static, not " .. mode)
  bench_mode = mode -- a global, so that done() (in wrk's main Lua state) can read it
  load_pairs(assert(args[2], "usage: -- MODE PAIRS UNKNOWN SEED"))
  unknown = tonumber(args[3] or "0.1")
  math.randomseed(tonumber(args[4] or "1") * 1000 + (thread_number or 0))
end

function request()
  local i = random(count)
  local order_id = ids[i]
  if random() < unknown then
    -- A well-formed id in the same shape that no merchant has: a real index lookup that misses.
    order_id = "NX" .. random(100000, 999999) .. "-" .. random(1000000000, 2000000000)
  end
  local path = mode == "static" and STATIC or (TRACKING .. order_id)
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. keys[i] })
end

function done(summary, latency, requests)
  local e = summary.errors
  local mode = threads[1] and threads[1]:get("bench_mode") or "?"
  io.write(string.format(
    'BENCH_RESULT {"mode":"%s","requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors_connect":%d,"errors_read":%d,"errors_write":%d,"errors_status":%d,' ..
    '"errors_timeout":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"stdev_us":%.1f}\n',
    mode, summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean, latency.stdev))
end
