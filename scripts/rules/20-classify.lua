-- 20-classify.lua: a mail without a product gets one from the words of its subject,
-- using the keywords of the catalogue. Runs before routing (priority 10).
loket.on("contact", function(c)
  if c.product or c.channel ~= "email" or c.subject == nil then return end
  local subject = c.subject:lower()
  for code, p in pairs(loket.catalogue) do
    for _, word in ipairs(p.keywords) do
      if subject:find(word, 1, true) then
        c.product = code
        return
      end
    end
  end
end, { priority = 10 })
