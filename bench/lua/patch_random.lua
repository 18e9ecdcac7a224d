-- PATCH /v1/tasks/t<1..N> at random with a new additional_data value each time.
local n = tonumber(os.getenv("TASKS") or "10000")
local auth = "Bearer " .. os.getenv("KEY")
local counter = 0
math.randomseed(os.time())
request = function()
  counter = counter + 1
  local body = '{"additional_data":{"n":' .. counter .. '}}'
  return wrk.format("PATCH", "/v1/tasks/t" .. math.random(1, n),
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end
