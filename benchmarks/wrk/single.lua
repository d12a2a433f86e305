-- One transaction per request, unique ids; saturated (closed loop). See common.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
bench.single()
