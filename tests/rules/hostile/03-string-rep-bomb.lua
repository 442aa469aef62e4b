-- 03-string-rep-bomb.lua
-- Proves: one allocation far over the memory cap (a 1 GiB string) is refused
-- and the rule ends as memory; the daemon does not grow by a gigabyte.
loket.on("contact", function(c)
  local s = string.rep("x", 2^30)
  c:tag("got-" .. #s)
end)
