-- GET /ngsi-ld/v1/entities/{id} on entities picked at random.
-- Arguments (after --): entity count, id prefix.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("common")

expected = { [200] = true }

local count, prefix

function init(args)
   count = tonumber(args[1] or "1000")
   prefix = args[2] or "urn:ngsi-ld:Bench:"
   math.randomseed(os.time() * 1000 + (id or 0))
end

function request()
   return wrk.format("GET", "/ngsi-ld/v1/entities/" .. prefix .. math.random(0, count - 1))
end
