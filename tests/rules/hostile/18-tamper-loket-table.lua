-- 18-tamper-loket-table.lua
-- Proves: the loket table and the catalogue under it are read-only for rules:
-- no new keys, no removed functions, no changed products, no swapped
-- metatable. 99-probe.lua checks afterwards that loket.on is a function, that
-- loket.catalogue.x is nil and that omgevingsvergunning is still line 2.
loket.on("contact", function(c)
  pcall(function() setmetatable(loket, nil) end)
  pcall(function() setmetatable(loket.catalogue, nil) end)
  pcall(function() loket.on = nil end)
  pcall(function() loket.log = nil end)
  pcall(function() loket.catalogue.x = 1 end)
  pcall(function() loket.catalogue.omgevingsvergunning = nil end)
  pcall(function() loket.catalogue.omgevingsvergunning.line = 1 end)
  pcall(function() loket.catalogue.omgevingsvergunning.keywords[1] = "x" end)
  pcall(function() rawset(loket.catalogue, "x", 1) end)
  pcall(function() getmetatable(loket).__index.x = 1 end)
  pcall(function() for k in pairs(loket) do loket[k] = nil end end)
  pcall(function() for _, p in pairs(loket.catalogue) do p.line = 1 end end)
  -- The direct way, uncaught: the rule ends as error.
  loket.catalogue.x = 1
end)
