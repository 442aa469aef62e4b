-- 16-require-escape.lua
-- Proves: require reaches only plain-named modules of the rules folder: not
-- the standard libraries it stands in for, not a path out of the folder, not
-- an absolute path. Each that works tags "escaped:..."; the last one is not
-- caught, so the rule ends as error.
loket.on("contact", function(c)
  local function escaped(what) c:tag("escaped:" .. what) end
  for _, name in ipairs({ "io", "os", "debug", "package", "ffi", "../../etc/passwd",
                          "/etc/passwd", "..", "99-probe", "hostile/../../x" }) do
    local ok, m = pcall(require, name)
    if ok and type(m) == "table" and (m.open or m.execute or m.getinfo or m.loadlib) then
      escaped("require:" .. name)
    elseif ok and name:find("/", 1, true) then
      escaped("require:" .. name)
    end
  end
  require("../../etc/passwd")
end)
