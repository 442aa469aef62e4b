-- 06-catastrophic-find.lua
-- Proves: a pattern with four lazy repetitions over a 50 000 byte subject
-- (about 50000^5 steps of backtracking in C, where no hook can stop it) is
-- refused up front by the pattern guard: the rule ends as error, at once.
loket.on("contact", function(c)
  local s = string.rep("a", 50000)
  local i = s:find(".-.-.-.-b")
  c:tag("find-" .. tostring(i))
end)
