-- One transaction per request, counting responses by status code (overload curves).
-- Paced when BENCH_RATE is set (with BENCH_CONNECTIONS), else saturated. See common.lua.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local bench = dofile(dir .. "common.lua")
bench.single()
if os.getenv("BENCH_RATE") then
  bench.paced()
end
bench.count_statuses()
