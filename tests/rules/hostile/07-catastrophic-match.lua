-- 07-catastrophic-match.lua
-- Proves: string.match (and the method form) goes through the same guard as
-- find: three captured lazy repetitions over 50 000 bytes are refused (error).
loket.on("contact", function(c)
  local s = string.rep("a", 50000)
  local a, b, x = s:match("(.-)(.-)(.-)x")
  c:tag("match-" .. tostring(a))
end)
