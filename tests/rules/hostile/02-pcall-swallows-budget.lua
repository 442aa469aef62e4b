-- 02-pcall-swallows-budget.lua
-- Proves: catching the budget error with pcall does not buy more time. Once a
-- guard has fired, every further instruction fails, so the loop below cannot
-- hold on; the rule ends as budget (or timeout).
loket.on("contact", function(c)
  local caught = 0
  while true do
    local ok = pcall(function() while true do end end)
    if not ok then caught = caught + 1 end
    xpcall(function() while true do end end, function(e) return e end)
    caught = caught + 1
  end
end)
