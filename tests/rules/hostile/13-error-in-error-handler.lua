-- 13-error-in-error-handler.lua
-- Proves: an error handler that itself fails, again and again, and an error
-- object whose __tostring never returns, end the rule with a named result
-- (error or error_in_error_handler); the daemon's own message handler is not
-- fooled into running rule code.
loket.on("contact", function(c)
  local ok, e = xpcall(error, function() error("again") end)
  for _ = 1, 10 do
    xpcall(function() error("once more") end, function(m) error(m .. " and again") end)
  end
  local evil = setmetatable({}, { __tostring = function() while true do end end })
  error(evil)
end)
