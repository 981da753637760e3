-- GET one query URL, given as the first argument (after --), again and again.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("common")

expected = { [200] = true }

local req

function init(args)
   req = wrk.format("GET", args[1])
end

function request()
   return req
end
