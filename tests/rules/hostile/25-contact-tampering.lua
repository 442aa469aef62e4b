-- 25-contact-tampering.lua
-- Proves: a rule changes a contact only through the fields and methods meant
-- for it: not its status, id, reference or history, not by rawset, not by
-- swapping its metatable, not by escalating to a department that does not
-- exist. The stored contact stays open on line 1; the last, uncaught attempt
-- ends the rule as error.
loket.on("contact", function(c)
  pcall(function() c.status = "closed" end)
  pcall(function() c.id = 1 end)
  pcall(function() c.reference = "1999-000001" end)
  pcall(function() c.history = {} end)
  pcall(function() c.line = 3 end)
  pcall(function() setmetatable(c, nil) end)
  pcall(function() getmetatable(c).__newindex = nil end)
  pcall(function() c:escalate{ to = "../../etc" } end)
  pcall(function() c.department = "nergens" end)
  pcall(function() c:tag(string.rep("t", 65)) end)
  c.status = "resolved"
end)
