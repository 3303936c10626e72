-- wrk script for the page-dumper benchmark.
-- Fixed-path mode (no arguments): wrk's own static request; only done() is scripted, so the
-- script costs nothing per request.
-- Unique-path mode (`-- /page/<prefix>-`): every request gets a path never requested before
-- (prefix .. thread .. counter), so a cache in front of the origin can only miss.
-- Cycle mode (`-- cycle /page/ 1000`): requests go round /page/1 ... /page/1000, so consecutive
-- requests (and concurrent ones) ask for different pages.

local prefix = nil
local n = 0
local tid = 0
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  if args[1] == "cycle" then
    local base = args[2]
    local count = tonumber(args[3])
    request = function()
      n = n + 1
      return wrk.format("GET", base .. ((n % count) + 1))
    end
  elseif args[1] ~= nil and args[1] ~= "" then
    prefix = args[1]
    tid = tonumber(wrk.thread:get("tid")) or 0
    request = function()
      n = n + 1
      return wrk.format("GET", prefix .. tid .. "-" .. n)
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"duration_us":%d,"requests":%d,"bytes":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.duration, summary.requests, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
