-- 00-mark.lua: a benign rule that runs before the hostile one: every contact
-- it sees is tagged "seen", so a test can tell the rules ran at all.
loket.on("contact", function(c)
  c:tag("seen")
end)
