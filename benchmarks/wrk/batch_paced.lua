-- NDJSON batches at a near-fixed BENCH_RATE requests/s (latency SLOs). See common.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
bench.batch()
bench.paced()
