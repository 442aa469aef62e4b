-- 17-tamper-string-library.lua
-- Proves: the string library is shared by every rule and read-only: not by
-- assignment, not through the strings' metatable (getmetatable("") must not
-- hand out the real one), not with rawset or setmetatable. 99-probe.lua checks
-- afterwards that string.upper("a") == "A" and ("abc"):len() == 3 still hold.
loket.on("contact", function(c)
  pcall(function() string.upper = nil end)
  pcall(function() string.len = function() return 0 end end)
  pcall(function() getmetatable("").__index.upper = nil end)
  pcall(function() getmetatable("").__index = {} end)
  pcall(function() getmetatable("").__index.len = function() return 0 end end)
  pcall(function() setmetatable(string, nil) end)
  pcall(function() setmetatable(getmetatable(""), nil) end)
  pcall(function() rawset(string, "len", nil) end)
  pcall(function() for k in pairs(string) do string[k] = nil end end)
  pcall(function() table.insert = nil end)
  pcall(function() math.floor = nil end)
  pcall(function() os.time = nil end)
  -- The direct way, uncaught: the rule ends as error.
  string.upper = nil
end)
