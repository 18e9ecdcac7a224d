-- GET /v1/tasks/t<1..N> at random; N and the key come from the environment.
local n = tonumber(os.getenv("TASKS") or "10000")
local auth = "Bearer " .. os.getenv("KEY")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/v1/tasks/t" .. math.random(1, n), { ["Authorization"] = auth })
end
