-- 24-register-handlers-at-run-time.lua
-- Proves (or shows it does not hold): loket.on belongs to loading. A handler
-- that registers a handler (which registers a handler, ...) while a contact is
-- being handled must fail (error) instead of growing the list of handlers that
-- rules_run is walking, for this contact and every contact after it.
local function again(c)
  loket.on("contact", again)
end

loket.on("contact", again)
