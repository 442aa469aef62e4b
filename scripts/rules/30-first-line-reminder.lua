-- 30-first-line-reminder.lua: a first-line contact still open after four open
-- hours goes to the team lead (the department "onthaal").
loket.on("contact", function(c)
  if c.line == 1 and c.status == "open" then
    c:remind{ after = "4h", unless = "resolved",
              escalate = { to = "onthaal", reason = "niet beantwoord binnen 4 openingsuren" } }
  end
end)
