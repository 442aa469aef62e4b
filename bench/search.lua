-- search.lua: wrk script for bench/search: GET /api/v1/search?q=...&type=contacts for a
-- random query of a file on every request, with a bearer token; stops after a request count.
--
-- wrk ... -s search.lua URL -- TOKEN QUERIES_FILE [REQUESTS] [LIMIT]
--   TOKEN         bearer token (lkt_...)
--   QUERIES_FILE  one query per line, URL-encoded already
--   REQUESTS      total requests over all threads (each thread prints "QUOTA" after its
--                 share; the caller then sends wrk SIGINT). Set BENCH_THREADS to wrk's -t.
--   LIMIT         the limit parameter (default 20)
-- done() prints one line "BENCH key=value ..." for the bench script to read.

local threads = 0

function setup(thread)
   thread:set("thread_no", threads)
   threads = threads + 1
end

local headers = {}
local queries, quota, limit, answered

function init(args)
   headers["Authorization"] = "Bearer " .. (args[1] or "")
   queries = {}
   for line in io.lines(args[2]) do
      if line ~= "" then queries[#queries + 1] = line end
   end
   local total = tonumber(args[3] or "0")
   local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
   quota = total > 0 and math.ceil(total / nthreads) or 0
   limit = tonumber(args[4] or "20")
   answered = 0
   math.randomseed(os.time() * 1000 + (thread_no or 0))
end

function request()
   local q = queries[math.random(1, #queries)]
   return wrk.format("GET", "/api/v1/search?type=contacts&limit=" .. limit .. "&q=" .. q,
                     headers)
end

function response(status, hdrs, body)
   answered = answered + 1
   if quota > 0 and answered == quota then
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
