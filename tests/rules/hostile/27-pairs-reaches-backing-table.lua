-- 27-pairs-reaches-backing-table.lua
-- Proves: a read-only library or table hands out keys and values only. The
-- usual pairs() returns (next, t, nil); for a proxy that t was the shared table
-- behind it, so "local _, s = pairs(string); s.lower = ..." changed
-- string.lower for every rule file and contact until a reload. Every route a
-- rule has is tried here: what pairs() returns, its iterator called with other
-- arguments, next(), getmetatable(). Whatever table comes back that is not the
-- proxy itself is written to; the rule then tags the contact "escaped:..." if
-- string.lower or loket.catalogue changed, and "pairs-walked" when pairs()
-- still lists the library's functions. 99-probe.lua checks string.lower
-- and the catalogue again for this contact and for a later one.
local function pwned() return "pwned" end

-- Every table reachable from t by the routes above, other than t itself.
local function reachable(t)
  local found = {}
  local function keep(x)
    if type(x) == "table" and not rawequal(x, t) then
      found[#found + 1] = x
    end
  end
  local f, s, k = pairs(t)
  keep(s)
  keep(k)
  pcall(function()
    local k1, v1 = f(s, nil)
    keep(k1)
    keep(select(2, f(t, nil)))
    keep(select(2, f({}, nil)))
  end)
  pcall(function() keep(next(t)) end)
  pcall(function() keep(getmetatable(t)) end)
  pcall(function() keep(getmetatable(t).__index) end)
  return found
end

loket.on("contact", function(c)
  for _, s in ipairs(reachable(string)) do
    pcall(function() s.lower = pwned end)
  end
  for _, s in ipairs(reachable(table)) do
    pcall(function() s.concat = pwned end)
  end
  for _, cat in ipairs(reachable(loket.catalogue)) do
    pcall(function() cat.x = { line = 1 } end)
    pcall(function() cat.omgevingsvergunning = nil end)
  end
  for _, p in pairs(loket.catalogue) do
    for _, inner in ipairs(reachable(p)) do
      pcall(function() inner.line = 1 end)
    end
  end
  if string.lower("A") ~= "a" then c:tag("escaped:pairs(string)") end
  if table.concat({ "a" }) ~= "a" then c:tag("escaped:pairs(table)") end
  if loket.catalogue.x ~= nil then c:tag("escaped:pairs(loket.catalogue)") end
  local p = loket.catalogue.omgevingsvergunning
  if p ~= nil and p.line ~= 2 then c:tag("escaped:pairs(product)") end
  -- pairs() still walks the library, key by key, and the rule runs to its end.
  local n = 0
  for name, fn in pairs(string) do
    if type(name) == "string" and type(fn) == "function" then n = n + 1 end
  end
  if n > 10 then c:tag("pairs-walked") end
end)
