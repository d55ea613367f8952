-- The load test's wrk client (bench/Oncely.LoadTest): one request per cycle with its own Idempotency-Key.
--   execute: a new key every request (key prefix .. thread id .. "-" .. counter), so every request must run the handler;
--   replay:  the keys prefix .. 0 .. key_count-1 in turn, all completed beforehand, so no request may run the handler.
-- Headers (Content-Type, Authorization, ...) come from wrk's -H options. Every thread counts its 2xx, its non-2xx
-- and the answers marked as replays; done() prints them and wrk's own numbers as "oncely.<name> <value>" lines,
-- which the program parses (wrk's human-readable report is not parsed).
-- Arguments after "--": mode, key prefix, key count (replay only), method, path, body, replayed-header name.

local threads = {}

function setup(thread)
   thread:set("thread_id", #threads + 1)
   table.insert(threads, thread)
end

function init(args)
   mode, prefix, key_count = args[1], args[2], tonumber(args[3])
   method, path, body, replayed_header = args[4], args[5], args[6], args[7]
   headers = {}
   for name, value in pairs(wrk.headers) do
      headers[name] = value
   end
   sent, ok, non2xx, replayed, first_failure = 0, 0, 0, 0, ""
   -- Threads start at different places in the replay key set, so they do not ask for the same key at once.
   offset = (thread_id - 1) * math.floor(key_count / 2)
end

function request()
   local key
   if mode == "replay" then
      key = prefix .. ((offset + sent) % key_count)
   else
      key = prefix .. thread_id .. "-" .. sent
   end
   sent = sent + 1
   headers["Idempotency-Key"] = key
   return wrk.format(method, path, headers, body)
end

function response(status, response_headers, response_body)
   if status >= 200 and status < 300 then
      ok = ok + 1
   else
      non2xx = non2xx + 1
      if first_failure == "" then
         first_failure = status .. " " .. string.sub(string.gsub(response_body or "", "%s+", " "), 1, 300)
      end
   end
   if response_headers[replayed_header] == "true" then
      replayed = replayed + 1
   end
end

function done(summary, latency, requests)
   local totals = { sent = 0, ok = 0, non2xx = 0, replayed = 0 }
   local failure = ""
   for _, thread in ipairs(threads) do
      for name, _ in pairs(totals) do
         totals[name] = totals[name] + thread:get(name)
      end
      if failure == "" then
         failure = thread:get("first_failure")
      end
   end
   local errors = summary.errors
   local lines = {
      { "duration_us", summary.duration },
      { "responses", summary.requests },
      { "sent", totals.sent },
      { "ok", totals.ok },
      { "non2xx", totals.non2xx },
      { "replayed", totals.replayed },
      { "socket_errors", errors.connect + errors.read + errors.write + errors.timeout },
      { "p50_us", latency:percentile(50.0) },
      { "p90_us", latency:percentile(90.0) },
      { "p99_us", latency:percentile(99.0) },
   }
   for _, line in ipairs(lines) do
      io.write(string.format("oncely.%s %d\n", line[1], line[2]))
   end
   io.write("oncely.first_failure " .. failure .. "\n")
end
