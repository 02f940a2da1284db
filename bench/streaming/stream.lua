-- wrk script for bench/streaming/run.sh.
--
-- wrk ... -s stream.lua URL -- MODE PATHS_FILE [RANGE_LEN] [SEED]
--   MODE        "range" (one random RANGE_LEN-byte range of a random file per request)
--               or "whole" (a whole random file per request, no Range header)
--   PATHS_FILE  lines "<path> <size-in-bytes>", e.g. "/audio/0123456789abcdef 4194304"
--   RANGE_LEN   bytes per range (mode "range")
--   SEED        math.randomseed; the same seed gives both servers the same request sequence
--
-- Headers given with wrk -H (e.g. Authorization) are sent with every request.
-- done() prints one machine-readable line:
--   RESULT requests=.. duration_us=.. bytes=.. rps=.. bytes_per_s=.. p50_us=.. p99_us=..
--          max_us=.. err_connect=.. err_read=.. err_write=.. err_timeout=.. err_status=..
-- err_status counts responses with status >= 400 (wrk's definition of "Non-2xx or 3xx").
-- bytes counts everything read from the socket (headers included), like wrk's Transfer/sec.

local mode, range_len = "range", 65536
local paths, sizes, n = {}, {}, 0

function init(args)
  mode = args[1] or "range"
  local list = args[2]
  range_len = tonumber(args[3] or "65536")
  local seed = tonumber(args[4] or "42")
  assert(mode == "range" or mode == "whole", "MODE must be range or whole, got " .. tostring(mode))
  assert(list, "PATHS_FILE argument missing")
  for line in io.lines(list) do
    local p, s = line:match("^(%S+)%s+(%d+)%s*$")
    if p then
      n = n + 1
      paths[n] = p
      sizes[n] = tonumber(s)
    end
  end
  assert(n > 0, "no paths in " .. list)
  math.randomseed(seed)
  if mode == "whole" then wrk.headers["Range"] = nil end
end

function request()
  local i = math.random(n)
  if mode == "range" then
    local size = sizes[i]
    local len = range_len
    if len > size then len = size end
    local off = math.random(0, size - len)
    wrk.headers["Range"] = "bytes=" .. off .. "-" .. (off + len - 1)
  end
  return wrk.format("GET", paths[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "RESULT requests=%d duration_us=%d bytes=%.0f rps=%.2f bytes_per_s=%.0f p50_us=%.0f p99_us=%.0f max_us=%.0f " ..
    "err_connect=%d err_read=%d err_write=%d err_timeout=%d err_status=%d\n",
    summary.requests, summary.duration, summary.bytes, summary.requests / secs, summary.bytes / secs,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.timeout, e.status))
end
