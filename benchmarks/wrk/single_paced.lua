-- One transaction per request at a near-fixed BENCH_RATE (latency SLOs). See common.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
bench.single()
bench.paced()
