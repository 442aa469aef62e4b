-- 99-probe.lua: runs after the hostile rule (file name order) and checks that
-- what all rules share is still intact: the libraries, the loket table, the
-- catalogue, and that no global of another file shows here. Everything intact:
-- the contact is tagged "probe-ok". Otherwise it is tagged "probe-broken:NAME"
-- for the first check that failed, and not "probe-ok".
local checks = {
  { "string.upper", function() return string.upper("a") == "A" end },
  { "method upper", function() return ("a"):upper() == "A" end },
  { "string.lower", function() return string.lower("A") == "a" and ("A"):lower() == "a" end },
  { "string.len", function() return string.len("abc") == 3 and ("abc"):len() == 3 end },
  { "string.find", function() return string.find("abc", "b", 1, true) == 2 end },
  { "string.rep", function() return string.rep("ab", 2) == "abab" end },
  { "string metatable", function() return type(getmetatable("")) ~= "table" end },
  { "tostring", function() return tostring(12) == "12" end },
  { "pairs", function() return type(pairs) == "function" and type(ipairs) == "function" end },
  { "table", function() return table.concat({ "a", "b" }) == "ab" and type(table.insert) == "function" end },
  { "math", function() return math.floor(2.5) == 2 end },
  { "os", function() return type(os.time()) == "number" and type(os.date) == "function" end },
  { "loket.on", function() return type(loket.on) == "function" end },
  { "loket.log", function() return type(loket.log) == "function" end },
  { "loket.calendar", function() return type(loket.calendar) == "function" end },
  { "catalogue.x", function() return loket.catalogue.x == nil end },
  { "catalogue.product", function()
      local p = loket.catalogue.omgevingsvergunning
      return p == nil or (p.line == 2 and p.department == "omgeving")
    end },
  { "no io", function() return io == nil and debug == nil and package == nil end },
  { "no rawset", function() return rawset == nil and rawget == nil end },
  { "globals of other files", function()
      return leaked_at_load == nil and leaked_while_running == nil and leaked_base == nil
    end },
}

loket.on("contact", function(c)
  for _, check in ipairs(checks) do
    local ok, good = pcall(check[2])
    if not (ok and good) then
      c:tag("probe-broken:" .. check[1])
      return
    end
  end
  c:tag("probe-ok")
end)
