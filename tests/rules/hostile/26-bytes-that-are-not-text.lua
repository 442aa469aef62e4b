-- 26-bytes-that-are-not-text.lua
-- Proves: what a rule hands to the register is text the register can keep.
-- Lua strings are bytes; a tag, a field, a reason that is not UTF-8 (or has a
-- NUL in it) used to be stored as it was, so that the new contact's answer
-- could not be encoded (500) and every list that held it failed from then on.
-- Each attempt fails on the spot instead; the last, uncaught, ends the rule as
-- error, and the contact is stored as it came in.
loket.on("contact", function(c)
  pcall(function() c.product = "\xc3" end)
  pcall(function() c.tags = { "ok", "\xff" } end)
  pcall(function() c.language = "nl\0" end)
  pcall(function() c:escalate{ to = "omgeving", reason = "\xe2\x82" } end)
  pcall(function() c:reply{ template = "../../etc/passwd", via = "email" } end)
  pcall(function() c:remind{ after = "4h", call = "bel\xffterug" } end)
  pcall(error, "\xff\xfe")
  loket.log("\xff\27[2J")
  c:tag("\xff")
end)
