-- 22-table-move-nothing.lua
-- Proves (or shows it does not hold): table.move from an empty table moves
-- nils one by one in C, allocating nothing: 2^40 of them is hours in a single
-- call, out of reach of the count hook and the memory cap. The rule must be
-- refused or stopped (error, budget or timeout) and the daemon keep serving.
loket.on("contact", function(c)
  table.move({}, 1, 2^40, 2)
  c:tag("move-done")
end)
