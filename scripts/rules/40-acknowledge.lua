-- 40-acknowledge.lua: a citizen who writes outside opening hours hears when to
-- expect an answer; the template says so with the expected date.
loket.on("contact", function(c)
  if c.channel ~= "email" and c.channel ~= "web" then return end
  local unit = c.department or c.organisation
  if not loket.calendar(unit):is_open() then
    c:tag("buiten-openingsuren")
    c:reply{ template = "ontvangen-buiten-openingsuren", via = c.channel }
  end
end)

loket.on("escalated", function(c)
  if c.party and c.channel == "email" then
    c:reply{ template = "doorverwezen", via = "email" }
  end
end)
