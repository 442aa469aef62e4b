-- 40-acknowledge.lua: a citizen who writes in (mail or e-loket form) gets an
-- acknowledgement by mail with the reference and the date an answer can be
-- expected, counted in the department's opening hours; outside opening hours
-- the mail says so. Automatic mail (out-of-office, bounces, lists) never gets
-- one: loketd drops replies to it.
loket.on("contact", { channel = { "email", "web" } }, function(c)
  if not (c.party and c.party.email) then return end
  local unit = c.department or c.organisation
  if loket.calendar(unit):is_open() then
    c:reply{ template = "ontvangen", via = "email", within = "2d" }
  else
    c:tag("buiten-openingsuren")
    c:reply{ template = "ontvangen-buiten-openingsuren", via = "email", within = "2d" }
  end
end)

loket.on("escalated", { channel = "email" }, function(c)
  c:reply{ template = "doorverwezen", via = "email" }
end)
