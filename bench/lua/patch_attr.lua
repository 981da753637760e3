-- PATCH /ngsi-ld/v1/entities/{id}/attrs/{attr} on entities picked at random.
-- Arguments (after --): entity count, id prefix, attribute name.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("common")

expected = { [204] = true }

local count, prefix, attr
local value = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
   count = tonumber(args[1] or "1000")
   prefix = args[2] or "urn:ngsi-ld:Bench:"
   attr = args[3] or "a1"
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   value = value + 1
   local path = "/ngsi-ld/v1/entities/" .. prefix .. math.random(0, count - 1)
      .. "/attrs/" .. attr
   return wrk.format("PATCH", path, headers, '{"type":"Property","value":' .. value .. "}")
end
