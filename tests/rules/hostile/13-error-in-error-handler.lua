-- 13-error-in-error-handler.lua
-- Proves: an error handler that itself fails, again and again, and an error
-- object whose __tostring never returns, end the rule with a named result
-- (error or error_in_error_handler); the daemon's own message handler is not
-- fooled into running rule code.
loket.on("contact", function(c)
  local ok, e = xpcall(error, function() error("again") end)
  -- Three rounds: each recurses to Lua's C-stack limit with a longer message every
  -- level, which under ASan takes about 5 ms a round, and the limit here is 50 ms.
  for _ = 1, 3 do
    xpcall(function() error("once more") end, function(m) error(m .. " and again") end)
  end
  local evil = setmetatable({}, { __tostring = function() while true do end end })
  error(evil)
end)
