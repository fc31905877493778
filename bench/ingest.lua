-- wrk script for the ingestion benchmark (bench/ingest.py drives it): courier callbacks or
-- driver location batches, as fast as the server takes them or paced at a fixed rate.
--
--   wrk -t1 -c32 -d10s -s bench/ingest.lua http://127.0.0.1:PORT -- mode=callback KEY=VALUE...
--
-- mode=callback  POST /couriers/gosend/callback, GoSend `booking_event` bodies
--   awbs=FILE    one AWB per line (bench/ingest_seed.py), each a GoSend order in finding_driver
--   start=N      0-based line to start at; count=N lines this run may use (it wraps after them,
--                and the outcome counts then show duplicates: ingest.py checks for that)
--   wave=N       orders walked together: every order of a wave gets its first event, then its
--                second, ... so an order's next event goes out N requests after its previous one
--                and (N >> connections) arrives after it, unless the stream reorders it on purpose
--   token=T      the `Authorization` header (LACAK_GOSEND_CALLBACK_TOKEN)
--   base_ms=MS   created_at of line 0 in epoch ms; line n was created n seconds later
--   repeat=F     share of orders whose courier delivers one event twice (same event_id: duplicate)
--   swap=F       share of orders whose `picked` overtakes `out_for_pickup` (which is then stale)
-- mode=location  POST /api/driver/v1/location, batches of points
--   drivers=FILE `token<TAB>lat<TAB>long<TAB>order pk` per driver; they take turns
--   batch=N      points per request: one a second up to now, moving along
-- both:
--   rate=R       requests per second (0: no pacing, every connection sends as soon as answered)
--
-- setup() and done() come from lookup.lua, so every run prints the same `BENCH_RESULT` line.

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "lookup.lua")

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *ts);
]]
local timespec = ffi.new("bench_timespec")
local CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1

local function clock_ms(clock)
  ffi.C.clock_gettime(clock, timespec)
  return tonumber(timespec.tv_sec) * 1000 + tonumber(timespec.tv_nsec) / 1e6
end

local opts = {}
local format, concat = string.format, table.concat

local function lines(path, each)
  local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  local n = 0
  for line in file:lines() do
    if line ~= "" then
      n = n + 1
      each(n, line)
    end
  end
  file:close()
  assert(n > 0, "nothing in " .. path)
  return n
end

-- -- courier callbacks ---------------------------------------------------------------------------

-- GoSend statuses in the order a trip produces them: status, event type, minutes after the order
-- was created, whether the driver is known by then.
local STEPS = {
  { "confirmed", "CONFIRMED", 0, false },
  { "allocated", "DRIVER_FOUND", 3, true },
  { "out_for_pickup", "DRIVER_OTW_PICKUP", 4, true },
  { "picked", "ITEM_PICKED", 12, true },
  { "out_for_delivery", "DRIVER_OTW_DROP", 13, true },
  { "delivered", "COMPLETED", 38, true },
}
-- What the courier sends for one order, as indexes into STEPS.
local IN_ORDER = { 1, 2, 3, 4, 5, 6 }
local REPEATED = { 1, 2, 3, 3, 4, 5, 6 }
local SWAPPED = { 1, 2, 4, 3, 5, 6 }
local ROUNDS = 7 -- the longest of the three
local NAMES = { "Anton Lucarus", "Budi Santoso", "Siti Rahayu", "Agus Pratama", "Dewi Kusuma",
  "Rizky Saputra", "Joko Wibowo", "Eko Nugroho" }

local awbs, first, count, wave = {}, 0, 0, 500
local token, base_ms, repeat_share, swap_share = "", 0, 0.05, 0.05
local cursor = { wave = 0, round = 1, slot = 0 }

local function events_of(n)
  -- A fixed hash of the order's line number, not math.random: the same order always gets the
  -- same story, whichever run or thread reaches it.
  local h = (n * 2654435761) % 1000 / 1000
  if h < repeat_share then return REPEATED end
  if h < repeat_share + swap_share then return SWAPPED end
  return IN_ORDER
end

local function booking_event(n, step)
  local s = STEPS[step]
  local awb = awbs[n + 1]
  local name, phone, photo, receiver = "", "", "", ""
  if s[4] then
    name = NAMES[n % #NAMES + 1]
    phone = format("62811%07d", n % 10000000)
    photo = format("https://gosend.example/d/%d.jpg", 510000 + n % 5000)
  end
  if s[1] == "delivered" then receiver = "Ibu Wulan" end
  local at = base_ms + n * 1000 + s[3] * 60000
  return format(
    '{"@type":"booking_event","entity_id":"%s","type":"%s","event_date":%.0f,' ..
    '"event_id":"%08x-%04x-4000-8000-%012x","partner_id":"601","destination_type":"market_place",' ..
    '"booking_id":"%s","status":"%s","booking_status":"%s","booking_type":"instant",' ..
    '"driver_name":"%s","driver_phone":"%s","driver_phone2":"","driver_phone3":"",' ..
    '"driver_photo_url":"%s","total_distance_in_kms":%.2f,"price":%d.0,"receiver_name":"%s",' ..
    '"live_tracking_url":"http://gjk.io/%x","cancelled_by":null,"cancellation_reason":null,' ..
    '"pickup_eta":"%.0f-%.0f","delivery_eta":"%.0f-%.0f"}',
    awb, s[2], at, n, step, n * 8 + step, awb, s[1], s[1], name, phone, photo,
    1 + n % 90 / 10, 12000 + n % 40 * 500, receiver, n,
    at / 1000 + 300, at / 1000 + 900, at / 1000 + 1800, at / 1000 + 2700)
end

local function next_callback()
  while true do
    local c = cursor
    local n = first + (c.wave * wave + c.slot) % count
    local step = events_of(n)[c.round]
    c.slot = c.slot + 1
    if c.slot == wave then
      c.slot, c.round = 0, c.round + 1
      if c.round > ROUNDS then c.round, c.wave = 1, c.wave + 1 end
    end
    if step then
      return wrk.format("POST", "/couriers/gosend/callback",
        { ["Authorization"] = token, ["Content-Type"] = "application/json" }, booking_event(n, step))
    end
  end
end

-- -- driver locations ------------------------------------------------------------------------------

local drivers, batch, turn = {}, 50, 0

local function next_location()
  turn = turn % #drivers + 1
  local d = drivers[turn]
  local now = clock_ms(CLOCK_REALTIME)
  local points = {}
  for k = 1, batch do
    d.moved = d.moved + 1
    -- About 3 m a second, with the jitter of a phone's fix.
    local lat = d.lat + d.moved * 2e-5 + (math.random() - 0.5) * 2e-5
    local long = d.long + d.moved * 2e-5 + (math.random() - 0.5) * 2e-5
    points[k] = format('{"lat":%.7f,"long":%.7f,"at":%.0f,"accuracy":%.1f}',
      lat, long, now - (batch - k) * 1000, 4 + math.random() * 12)
  end
  return wrk.format("POST", "/api/driver/v1/location",
    { ["Authorization"] = "Bearer " .. d.token, ["Content-Type"] = "application/json" },
    '{"points":[' .. concat(points, ",") .. "]}")
end

-- -- wrk hooks -------------------------------------------------------------------------------------

local interval_ms, due_ms = 0, nil

-- Paced runs: the k-th request is due k intervals after the first one. Behind schedule (the
-- server was slower) it goes at once, so the achieved rate shows whether the server kept up.
local function paced()
  local now = clock_ms(CLOCK_MONOTONIC)
  due_ms = due_ms or now
  local wait = due_ms - now
  due_ms = due_ms + interval_ms
  return wait > 0 and math.floor(wait + 0.5) or 0
end

function init(args)
  for _, arg in ipairs(args) do
    local k, v = arg:match("^([%w_]+)=(.*)$")
    assert(k, "arguments are key=value, not " .. arg)
    opts[k] = v
  end
  bench_mode = assert(opts.mode, "mode=callback|location")
  math.randomseed(tonumber(opts.seed or "1") * 1000 + (thread_number or 0))
  if bench_mode == "callback" then
    lines(assert(opts.awbs, "awbs=FILE"), function(n, line) awbs[n] = line end)
    first, count = tonumber(opts.start or "0"), tonumber(opts.count or #awbs)
    assert(first + count <= #awbs, "start + count beyond the AWB file")
    wave = tonumber(opts.wave or wave)
    token, base_ms = assert(opts.token, "token=T"), tonumber((assert(opts.base_ms, "base_ms=MS")))
    repeat_share, swap_share = tonumber(opts["repeat"] or "0.05"), tonumber(opts.swap or "0.05")
    request = next_callback
  elseif bench_mode == "location" then
    lines(assert(opts.drivers, "drivers=FILE"), function(n, line)
      local tok, lat, long = line:match("^(%S+)\t(%S+)\t(%S+)")
      drivers[n] = { token = tok, lat = tonumber(lat), long = tonumber(long), moved = 0 }
    end)
    batch = tonumber(opts.batch or batch)
    turn = math.random(#drivers) - 1
    request = next_location
  else
    error("mode must be callback or location, not " .. bench_mode)
  end
  local rate = tonumber(opts.rate or "0")
  if rate > 0 then
    interval_ms = 1000 / rate
    delay = paced
  else
    delay = nil -- wrk checks for a delay() after init(): without one, no pacing at all
  end
end
