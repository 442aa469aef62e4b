-- 19-file-globals.lua
-- Proves: each rule file has its own globals. What this file sets, at load and
-- while running, including names of the shared libraries (string, tostring,
-- loket), stays in this file: 99-probe.lua reads the same names and must see
-- nil or the real libraries. The rule succeeds and tags "globals-set".
leaked_at_load = "yes"
tostring = function() return "pwned" end

loket.on("contact", function(c)
  leaked_while_running = "yes"
  string = { upper = function() return "pwned" end }
  loket = nil
  _ENV.pairs = nil
  c:tag("globals-set")
end)
