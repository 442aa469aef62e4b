-- 23-gc-finalizer-loop.lua
-- Proves (or shows it does not hold): code a rule leaves behind in a __gc
-- metamethod is held to the same limits. Lua turns debug hooks off while a
-- finalizer runs, so the count hook cannot stop this loop, whenever the
-- collector gets to it (in a later rule, after the run, on reload or at exit).
-- The rule must be refused (error: no __gc for rules) or the loop stopped, and
-- the daemon keep serving.
loket.on("contact", function(c)
  for _ = 1, 100 do
    setmetatable({}, { __gc = function() while true do end end })
  end
  -- Garbage, so the collector comes round soon.
  for _ = 1, 2000 do local _ = { string.rep("g", 1000) } end
  c:tag("finalizers-armed")
end)
