-- 08-pattern-optional-backtracking.lua
-- Proves (or shows it does not hold): the pattern guard also knows '?'. The
-- pattern a?a?...a? (30 times) followed by aaa...a (30 times) against 30 a's
-- makes Lua's matcher try 2^30 ways, in C, out of reach of the count hook:
-- about a minute and a half of CPU on one call. It must be refused (error) or
-- stopped (timeout) within the rule's wall-clock limit.
loket.on("contact", function(c)
  local n = 30
  local s = string.rep("a", n)
  local m = s:match(string.rep("a?", n) .. string.rep("a", n))
  c:tag("matched-" .. tostring(m ~= nil))
end)
