-- 10-pattern-backreference.lua
-- Proves (or shows it does not hold): a back-reference compares up to the
-- whole capture at every step. (.-)%1b over 7 000 a's has one repetition, so
-- the guard's estimate is (n+1)^2 = 4.9e7, just under its cap, but the real
-- work is about n^3/24 byte comparisons: ten times the 50 ms limit on one call.
loket.on("contact", function(c)
  local s = string.rep("a", 7000)
  local i = s:find("(.-)%1b")
  c:tag("backref-" .. tostring(i))
end)
