-- 20-env-metatable.lua
-- Proves (or shows it does not hold): per-file globals cannot be bypassed
-- through the metatable of _ENV. A file's globals table falls back to the
-- table of shared base functions and libraries; if getmetatable(_ENV) hands
-- that table out, one rule can put names into every other file's globals and
-- replace string or tostring for every rule that runs after it. 99-probe.lua
-- must still see leaked_base == nil and the real string.upper and tostring.
loket.on("contact", function(c)
  local base = getmetatable(_ENV).__index
  base.leaked_base = "yes"
  base.string = { upper = function() return "pwned" end, len = function() return 0 end }
  base.tostring = function() return "pwned" end
  c:tag("base-changed")
end)
