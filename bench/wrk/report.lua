-- Shared by every wrk script in bench/: prints one machine-readable line at the end of a
-- run, so run.sh never has to parse wrk's rounded human output ("1.23ms").
--
-- wrk itself only counts status >= 400 as an error ("Non-2xx or 3xx responses"). With
-- WRK_STRICT=1 (the smoke run) a `response` hook also counts every status outside
-- 200..299. It is off in measured runs because a response hook makes wrk parse every
-- response into Lua tables, which would slow the client that shares CPU 0 with the upstream.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

if os.getenv("WRK_STRICT") == "1" then
   bad = 0
   function response(status, headers, body)
      if status < 200 or status > 299 then
         bad = bad + 1
      end
   end
end

function done(summary, latency, requests)
   local bad_total = -1
   if os.getenv("WRK_STRICT") == "1" then
      bad_total = 0
      for _, t in ipairs(threads) do
         bad_total = bad_total + (t:get("bad") or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d,' ..
      '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
      '"bad_status":%d}\n',
      summary.requests, summary.duration, summary.bytes,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.mean, latency.max,
      e.connect, e.read, e.write, e.status, e.timeout, bad_total))
end
