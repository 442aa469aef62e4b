-- 21-empty-string-rep.lua
-- Proves (or shows it does not hold): a C function that loops without
-- allocating is stopped too. string.rep("", n) produces nothing, so the memory
-- cap never fires, and copies zero bytes n times inside one C call, so the
-- count hook never runs: 2^40 turns take about half an hour. The rule must be
-- refused or stopped (error, budget or timeout) and the daemon keep serving.
loket.on("contact", function(c)
  local s = string.rep("", 2^40)
  c:tag("rep-done-" .. #s)
end)
