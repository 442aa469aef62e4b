-- 10-routing.lua: what the catalogue hands to the second line goes there,
-- with the product's service time counted in the department's open hours.
loket.on("contact", function(c)
  local p = c.product and loket.catalogue[c.product]
  if p == nil then return end
  if p.line == 2 and p.department then
    c:escalate{ to = p.department, reason = "behandeld door " .. p.name,
                within = p.service_time }
  end
end)
