-- POST /ngsi-ld/v1/entityOperations/upsert with pre-generated bodies, one JSON array a line
-- in the file given as the first argument (after --). Bodies are used in turn, each thread
-- starting at a different one; 207 (some entities failed) counts as an error.
package.path = (debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "?.lua;" .. package.path
require("common")

expected = { [201] = true, [204] = true }

local requests_ = {}
local turn = 0

function init(args)
   local headers = { ["Content-Type"] = "application/json" }
   for line in io.lines(args[1]) do
      if #line > 0 then
         table.insert(requests_, wrk.format("POST", "/ngsi-ld/v1/entityOperations/upsert", headers, line))
      end
   end
   assert(#requests_ > 0, "no request bodies in " .. args[1])
   turn = ((id or 1) - 1) * 7
end

function request()
   turn = turn + 1
   return requests_[(turn % #requests_) + 1]
end
