-- 01-infinite-loop.lua
-- Proves: a rule that never ends is stopped by the instruction budget (or the
-- wall-clock limit), recorded as rule_failed (budget or timeout) and skipped;
-- the contact is still registered and the other rules still run.
loket.on("contact", function(c)
  while true do end
end)
