-- 14-load-binary-and-real-globals.lua
-- Proves: load() takes text only (a precompiled chunk could break the VM's own
-- checks), whatever mode is asked for, and a loaded chunk never sees the real
-- globals: rawset, rawget and the hidden libraries stay out of reach.
-- Anything that gets through tags the contact "escaped:..."; the test fails on
-- such a tag. The rule then calls what load gave back for a binary chunk
-- (nil), so it ends as error.
local header = "\27Lua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08\x78\x56\0\0\0\0\0\0\0\0\0\0\0\x28\x77\x40"

loket.on("contact", function(c)
  local function escaped(what) c:tag("escaped:" .. what) end

  if load(header) ~= nil then escaped("binary-chunk") end
  if load(header, "=x", "b") ~= nil then escaped("binary-chunk-mode-b") end
  if load(header, "=x", "bt") ~= nil then escaped("binary-chunk-mode-bt") end
  if load("return rawset")() ~= nil then escaped("rawset") end
  if load("return rawget")() ~= nil then escaped("rawget") end
  if load("return io")() ~= nil then escaped("io") end
  if load("return debug")() ~= nil then escaped("debug") end
  if load("return package")() ~= nil then escaped("package") end
  if load("return _G")() ~= nil then escaped("_G") end
  if load("return string.dump")() ~= nil then escaped("string.dump") end
  -- A chunk given its own environment gets exactly that, nothing more.
  if load("return rawset", "=x", "t", {})() ~= nil then escaped("rawset-env") end
  -- The chunk of a string.dump'ed function would be the usual way in; it is gone.
  if string.dump ~= nil then escaped("dump") end

  local f = load(header)
  f()
end)
