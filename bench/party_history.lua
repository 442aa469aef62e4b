-- party_history.lua: wrk script for bench/history: GET /api/v1/parties/{id}/contacts?limit=20
-- for a random party id on every request, with a bearer token; stops after a request count.
--
-- wrk ... -s party_history.lua URL -- TOKEN PARTIES [REQUESTS] [LIMIT]
--   TOKEN     bearer token (lkt_...)
--   PARTIES   party ids are drawn uniformly from 1..PARTIES
--   REQUESTS  total requests over all threads (default: run for wrk's -d). Each thread stops
--             after its share and prints "QUOTA"; the caller then sends wrk SIGINT (wrk
--             sleeps for -d otherwise). Set BENCH_THREADS to wrk's -t so the quota splits.
--   LIMIT     the limit parameter (default 20)
-- done() prints one line "BENCH key=value ..." for the bench script to read.

local threads = 0

function setup(thread)
   thread:set("thread_no", threads)
   threads = threads + 1
end

local headers = {}
local parties, quota, limit, answered, non200

function init(args)
   headers["Authorization"] = "Bearer " .. (args[1] or os.getenv("LOKET_TOKEN") or "")
   parties = tonumber(args[2] or "1000000")
   local total = tonumber(args[3] or "0")
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   quota = total > 0 and math.ceil(total / nthreads) or 0
   limit = tonumber(args[4] or "20")
   answered = 0
   math.randomseed(os.time() * 1000 + (thread_no or 0))
end

function request()
   local id = math.random(1, parties)
   return wrk.format("GET", "/api/v1/parties/" .. id .. "/contacts?limit=" .. limit, headers)
end

function response(status, hdrs, body)
   answered = answered + 1
   if quota > 0 and answered == quota then
      -- wrk itself only ends after -d; the bench script ends it (SIGINT) once every thread
      -- has said so, and wrk then reports the time actually run.
      io.write("QUOTA\n")
      io.flush()
      wrk.thread:stop()
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d bytes=%d errors_connect=%d errors_read=%d " ..
      "errors_write=%d errors_status=%d errors_timeout=%d lat_mean_us=%.1f lat_max_us=%d " ..
      "p50_us=%d p90_us=%d p99_us=%d p999_us=%d\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
      e.timeout, latency.mean, latency.max, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9)))
end
