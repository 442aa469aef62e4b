-- post_contact.lua: wrk script for bench/intake: POST /api/v1/contacts with a JSON body that
-- changes on every request (subject, channel, department, party) and a bearer token.
--
-- wrk ... -s post_contact.lua URL -- TOKEN [PARTIES]
--   TOKEN    bearer token (lkt_...); also read from $LOKET_TOKEN
--   PARTIES  how many distinct parties the requests cycle through (default 1000), so that
--            party matching finds existing parties most of the time and creates some
-- done() prints one line "BENCH key=value ..." for the bench script to read.

local threads = 0

function setup(thread)
   thread:set("thread_no", threads)
   threads = threads + 1
end

local token, parties, k, step
local channels = { "phone", "email", "web", "counter" }
local departments = { "burgerzaken", "omgeving", "sociale_dienst" }
local body_text = "Goedemiddag, ik had graag geweten wanneer ik mijn nieuwe identiteitskaart " ..
   "kan afhalen en of ik daarvoor een afspraak moet maken aan de balie. Met vriendelijke groeten."
local headers = {}

function init(args)
   token = args[1] or os.getenv("LOKET_TOKEN") or ""
   parties = tonumber(args[2] or os.getenv("BENCH_PARTIES") or "1000")
   step = tonumber(os.getenv("BENCH_THREADS") or "")
   if step == nil or step < 1 then step = 64 end
   k = 0
   headers["Content-Type"] = "application/json"
   headers["Authorization"] = "Bearer " .. token
end

function request()
   -- u is unique over all threads (thread t counts t, t+step, t+2*step, ...).
   local u = k * step + (thread_no or 0)
   local p = u % parties
   k = k + 1
   local body = string.format(
      '{"channel":"%s","subject":"Vraag %d over de identiteitskaart","body":"%s",' ..
      '"department":"%s","party":{"name":"Burger %d","email":"burger%d@example.be"},' ..
      '"meta":{"bench":"intake"}}',
      channels[k % 4 + 1], u, body_text, departments[k % 3 + 1], p, p)
   return wrk.format("POST", "/api/v1/contacts", headers, body)
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
