-- 40-acknowledge.lua: a citizen who writes in (mail or e-loket form) gets an
-- acknowledgement by mail with the reference and the date an answer can be
-- expected, counted in the department's opening hours; outside opening hours
-- the mail says so. Automatic mail (out-of-office, bounces, lists) never gets
-- one: loketd drops replies to it.
--
-- The date in the mail is the one the e-loket's confirmation page shows: the
-- product's service time (else 5 open days) counted in the calendar of the
-- product's department, else its organisation, else the contact's.
loket.on("contact", { channel = { "email", "web" } }, function(c)
  if not (c.party and c.party.email) then return end
  local p = c.product and loket.catalogue[c.product]
  local within = (p and p.service_time) or "5d"
  local promised = (p and (p.department or p.organisation)) or c.department or c.organisation
  local template = "ontvangen"
  if not loket.calendar(c.department or c.organisation):is_open() then
    c:tag("buiten-openingsuren")
    template = "ontvangen-buiten-openingsuren"
  end
  c:reply{ template = template, via = "email", within = within, unit = promised }
end)

loket.on("escalated", { channel = "email" }, function(c)
  c:reply{ template = "doorverwezen", via = "email" }
end)
