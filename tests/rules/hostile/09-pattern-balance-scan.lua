-- 09-pattern-balance-scan.lua
-- Proves (or shows it does not hold): %b has no * + - in it, but an unanchored
-- %b() over 300 000 unbalanced '(' scans to the end from every start position:
-- n^2/2 = 4.5e10 steps in C. The guard must count it (error) or the rule must
-- be stopped within its wall-clock limit (timeout).
loket.on("contact", function(c)
  local s = string.rep("(", 300000)
  local i = s:find("%b()")
  c:tag("balanced-" .. tostring(i))
end)
