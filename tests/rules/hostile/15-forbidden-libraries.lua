-- 15-forbidden-libraries.lua
-- Proves: io, os.execute, os.exit, os.remove, os.getenv, package, debug,
-- dofile, loadfile, collectgarbage, rawset, rawget and coroutine are not there,
-- under any name a rule can spell. Each one found tags the contact
-- "escaped:NAME" (the test fails on it); then the rule tries to read
-- /etc/passwd the direct way and ends as error.
loket.on("contact", function(c)
  local function escaped(what) c:tag("escaped:" .. what) end
  local reachable = {
    io = io, dofile = dofile, loadfile = loadfile, collectgarbage = collectgarbage,
    package = package, debug = debug, rawset = rawset, rawget = rawget,
    coroutine = coroutine, _G = _G,
    ["os.execute"] = os.execute, ["os.exit"] = os.exit, ["os.remove"] = os.remove,
    ["os.rename"] = os.rename, ["os.getenv"] = os.getenv, ["os.tmpname"] = os.tmpname,
    ["os.setlocale"] = os.setlocale,
  }
  for name, v in pairs(reachable) do
    if v ~= nil then escaped(name) end
  end
  -- Through the environment table itself, and through a fresh chunk.
  for _, name in ipairs({ "io", "debug", "package", "dofile", "loadfile", "collectgarbage" }) do
    if _ENV[name] ~= nil then escaped("_ENV." .. name) end
  end
  -- os keeps time and date only.
  for k in pairs(os) do
    if k ~= "time" and k ~= "date" then escaped("os." .. k) end
  end
  local passwd = io.open("/etc/passwd"):read("a")
  c:tag("passwd-" .. #passwd)
end)
