-- 20-classify.lua: a mail without a product gets one from the words of its subject,
-- using the keywords of the catalogue. Runs before routing (priority 10).
loket.on("contact", { channel = "email" }, function(c)
  if c.product or c.subject == nil then return end
  local code = loket.classify(c.subject)
  if code then c.product = code end
end, { priority = 10 })
