-- 11-pattern-cost-in-a-loop.lua
-- Proves (or shows it does not hold): the wall-clock limit holds for many
-- calls that the pattern guard allows one by one. Each find below is just under
-- the guard's cap (7 000^2 steps, some 0.1-0.2 s of C); 150 of them are fewer
-- than 1 000 instructions, so a count hook that looks at the clock every 1 000
-- instructions never gets to look. The rule must end as timeout (or error).
loket.on("contact", function(c)
  local s = string.rep("a", 7000)
  for _ = 1, 150 do
    s:find(".-b")
  end
  c:tag("loop-done")
end)
