-- 12-deep-recursion.lua
-- Proves: unbounded non-tail recursion ends in a Lua "stack overflow" error
-- (or the budget or memory cap, whichever comes first), not in a crash of the
-- daemon's C stack.
local function down(n)
  return 1 + down(n + 1)
end

loket.on("contact", function(c)
  c:tag("depth-" .. down(1))
end)
