-- Shared by the scenario scripts: counts responses whose status is not expected, and
-- prints one JSON line (prefixed "WRK_JSON ") with the run's figures from done().
--
-- A scenario script sets `expected` (a set of statuses, default: any 2xx) and defines
-- request() or sets wrk.method/wrk.path/wrk.body; then it calls common.install().

local common = {}

local threads = {}
local next_id = 1

function setup(thread)
   thread:set("id", next_id)
   table.insert(threads, thread)
   next_id = next_id + 1
end

-- Per-thread globals, read back with thread:get() in done().
unexpected = 0
statuses = {}

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   local ok
   if expected then
      ok = expected[status]
   else
      ok = status >= 200 and status < 300
   end
   if not ok then
      unexpected = unexpected + 1
   end
end

local function ms(us)
   return string.format("%.3f", us / 1000.0)
end

function done(summary, latency, requests)
   local bad = 0
   local counts = {}
   for _, thread in ipairs(threads) do
      bad = bad + (thread:get("unexpected") or 0)
      local s = thread:get("statuses") or {}
      for code, n in pairs(s) do
         counts[code] = (counts[code] or 0) + n
      end
   end
   local parts = {}
   for code, n in pairs(counts) do
      table.insert(parts, string.format('"%d": %d', code, n))
   end
   local e = summary.errors
   local seconds = summary.duration / 1e6
   io.write("WRK_JSON ")
   io.write(string.format(
      '{"requests": %d, "duration_s": %.6f, "requests_per_s": %.3f, "bytes": %d, '
         .. '"latency_ms": {"mean": %s, "stdev": %s, "max": %s, "p50": %s, "p90": %s, '
         .. '"p95": %s, "p99": %s}, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, '
         .. '"timeout": %d, "unexpected_status": %d}, "statuses": {%s}}\n',
      summary.requests, seconds, summary.requests / seconds, summary.bytes,
      ms(latency.mean), ms(latency.stdev), ms(latency.max),
      ms(latency:percentile(50)), ms(latency:percentile(90)),
      ms(latency:percentile(95)), ms(latency:percentile(99)),
      e.connect, e.read, e.write, e.status, e.timeout, bad,
      table.concat(parts, ", ")))
end

return common
