-- PATCH /v1/tasks/t<1..N> at random with a new additional_data value each time.
local n = tonumber(os.getenv("TASKS") or "10000")
local auth = "Bearer " .. os.getenv("KEY")
local counter = 0
-- Each wrk thread has its own Lua state: seeding them all with os.time() alone would give
-- every thread the same sequence of ids, so they would hit the same task at the same moment.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("thread_no", threads)
end
function init(args)
  math.randomseed(os.time() * 1000 + thread_no)
end
request = function()
  counter = counter + 1
  local body = '{"additional_data":{"n":' .. counter .. '}}'
  return wrk.format("PATCH", "/v1/tasks/t" .. math.random(1, n),
    { ["Authorization"] = auth, ["Content-Type"] = "application/json" }, body)
end
