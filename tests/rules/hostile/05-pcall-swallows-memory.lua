-- 05-pcall-swallows-memory.lua
-- Proves: a rule that catches its own out-of-memory error with pcall and tries
-- again, forever, is still ended, and named memory.
loket.on("contact", function(c)
  local failures = 0
  while true do
    local ok = pcall(string.rep, "x", 2^30)
    if not ok then failures = failures + 1 end
  end
end)
