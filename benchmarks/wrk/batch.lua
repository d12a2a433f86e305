-- BENCH_BATCH (500) transactions per request as NDJSON; saturated. See common.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
bench.batch()
