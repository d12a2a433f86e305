-- NDJSON batches counting responses by status code (overload curves). See common.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
bench.batch()
bench.count_statuses()
