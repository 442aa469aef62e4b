-- 04-table-growth-bomb.lua
-- Proves: memory grown a table at a time (about 1.6 MB per step, each step a
-- handful of instructions) hits the memory cap of the rules state, not the
-- daemon's; the rule ends as memory.
loket.on("contact", function(c)
  local s = string.rep("x", 100000)
  local t = {}
  while true do
    t[#t + 1] = { s:byte(1, -1) }
  end
end)
